"""pprof export and import: round trips through the model, the validity rules
of profile.proto checked by decoding with the generated code, and hostile
input (random, corrupted, truncated, a claim of a gigabyte of strings) that
must end in one OutputError."""
import dataclasses
import gzip
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from profiler.errors import OutputError
from profiler.export import pprof
from profiler.export.pprof_proto import profile_pb2
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping, Meta, Profile,
                                    Sample, ValueType)

LIBC_BUILD_ID = "0123456789abcdef0123456789abcdef01234567"


def model(*, types=(ValueType("samples", "count"), ValueType("cpu", "nanoseconds")),
          default="samples") -> Profile:
    """A small profile with every kind of frame the model knows."""
    mappings = {
        1: Mapping(id=1, start=0x400000, limit=0x401000, offset=0x0, path="/usr/bin/app",
                   build_id="aabbccdd", has_functions=True, has_filenames=True,
                   has_line_numbers=True, has_inline_frames=True),
        2: Mapping(id=2, start=0x7F0000000000, limit=0x7F0000100000, offset=0x28000,
                   path="/usr/lib/x86_64-linux-gnu/libc.so.6", build_id=LIBC_BUILD_ID,
                   has_functions=True),
        3: Mapping(id=3, start=0xFFFFFFFF81000000, limit=0xFFFFFFFF82000000,
                   path="[kernel.kallsyms]", has_functions=True),
        4: Mapping(id=4, start=0x7E0000000000, limit=0x7E0000010000, path="[anon]",
                   has_functions=True),
    }
    functions = {
        1: Function(id=1, name="main", system_name="main", filename="app.c", start_line=10),
        2: Function(id=2, name="work(int)", system_name="_Z4worki", filename="app.c",
                    start_line=20),
        3: Function(id=3, name="inlined_helper", system_name="inlined_helper",
                    filename="helper.h", start_line=3),
        4: Function(id=4, name="__libc_start_call_main"),
        5: Function(id=5, name="do_syscall_64", system_name="do_syscall_64"),
        6: Function(id=6, name="LazyCompile:*hot /app.js:1", system_name="LazyCompile:*hot"),
    }
    add = 2 if len(types) > 1 else 1
    locations = {
        # work() with inlined_helper inlined into it: innermost first
        1: Location(id=1, mapping_id=1, address=0x400123,
                    lines=(Line(function_id=3, line=5, column=7), Line(function_id=2, line=22))),
        2: Location(id=2, mapping_id=1, address=0x400050, lines=(Line(function_id=1, line=12),)),
        3: Location(id=3, mapping_id=2, address=0x7F0000001234,
                    lines=(Line(function_id=4),)),
        4: Location(id=4, mapping_id=2, address=0x7F0000002000, label="libc.so.6+0x2a000",
                    unresolved="no symbol"),
        5: Location(id=5, mapping_id=3, address=0xFFFFFFFF81001000,
                    lines=(Line(function_id=5),), kind=FrameKind.KERNEL),
        6: Location(id=6, mapping_id=3, address=0xFFFFFFFF81002000, kind=FrameKind.KERNEL,
                    label="[kernel.kallsyms]+0x2000", unresolved="no symbol"),
        7: Location(id=7, mapping_id=4, address=0x7E0000000100, lines=(Line(function_id=6),),
                    kind=FrameKind.JIT),
        8: Location(id=8, address=0x1234, label="[unknown]+0x1234", unresolved="no symbol"),
    }

    def values(n):
        return (n, n * 10_101_010)[:len(types)] if add == 2 else (n,)

    samples = (
        Sample(locations=(1, 2, 3), values=values(5), pid=100, tid=101, comm="app"),
        Sample(locations=(6, 5, 4, 2, 3), values=values(3), pid=100, tid=0, comm="app"),
        Sample(locations=(7, 2, 3), values=values(2), pid=200, tid=202, comm="node"),
        Sample(locations=(8,), values=values(1), pid=300, comm="with space"),
        Sample(locations=(5,), values=values(7), pid=0, comm="swapper/0"),
    )
    return Profile(sample_types=types, samples=samples, locations=locations,
                   functions=functions, mappings=mappings,
                   period_type=ValueType("cpu", "nanoseconds"), period=10_101_010,
                   time_nanos=1_700_000_000_123_456_789, duration_nanos=2_000_000_000,
                   default_sample_type=default,
                   meta=Meta(title="Flame Graph", summary=("5 samples, 0 lost",)))


def decode(data: bytes):
    return profile_pb2.Profile.FromString(gzip.decompress(data))


# ---------------------------------------------------------------- round trip


def test_round_trip_keeps_the_model():
    p = model()
    back = pprof.read(pprof.write(p))
    assert back.sample_types == p.sample_types
    assert back.samples == p.samples
    assert back.mappings == p.mappings
    assert back.functions == p.functions
    assert back.locations == p.locations  # labels of unresolved frames included
    assert (back.period_type, back.period, back.time_nanos, back.duration_nanos) == \
        (p.period_type, p.period, p.time_nanos, p.duration_nanos)
    assert back.default_sample_type == "samples"
    assert back.meta.unresolved_frames == 3
    assert back.meta.per_thread and not back.meta.empty


def test_round_trip_frame_names_and_kinds():
    p = model()
    back = pprof.read(pprof.write(p))
    for i, loc in p.locations.items():
        assert back.frame_names(back.locations[i]) == p.frame_names(loc)
        assert back.locations[i].kind is loc.kind
    assert back.frame_names(back.locations[1]) == ["work(int)", "inlined_helper"]


def test_raw_protobuf_reads_as_gzip_does():
    p = model()
    assert pprof.read(pprof.encode(p)) == pprof.read(pprof.write(p))


def test_output_is_reproducible():
    assert pprof.write(model()) == pprof.write(model())


def test_empty_profile():
    p = Profile(sample_types=(ValueType("samples", "count"),), samples=(), locations={},
                functions={}, mappings={})
    back = pprof.read(pprof.write(p))
    assert back.samples == () and back.meta.empty
    assert back.sample_types == p.sample_types


def test_one_sample_type_without_period():
    p = model(types=(ValueType("page-faults", "count"),), default="")
    p = dataclasses.replace(p, period_type=None, period=0)
    back = pprof.read(pprof.write(p))
    assert back.samples == p.samples and back.period_type is None
    assert back.default_sample_type == "page-faults"


# ---------------------------------------------------------------- validity


def test_written_file_follows_profile_proto_rules():
    p = model()
    data = pprof.write(p)
    assert data[:2] == b"\x1f\x8b"
    pb = decode(data)
    strings = list(pb.string_table)
    assert strings[0] == "" and len(set(strings)) == len(strings)
    for items in (pb.mapping, pb.location, pb.function):
        ids = [x.id for x in items]
        assert 0 not in ids and len(set(ids)) == len(ids)
    mapping_ids = {m.id for m in pb.mapping}
    function_ids = {f.id for f in pb.function}
    location_ids = {x.id for x in pb.location}
    for loc in pb.location:
        assert loc.mapping_id == 0 or loc.mapping_id in mapping_ids
        assert all(ln.function_id in function_ids for ln in loc.line)
    for s in pb.sample:
        assert len(s.value) == len(pb.sample_type) == 2
        assert set(s.location_id) <= location_ids
    every = [pb.default_sample_type, pb.period_type.type, pb.period_type.unit,
             *pb.comment, *(x for vt in pb.sample_type for x in (vt.type, vt.unit)),
             *(x for m in pb.mapping for x in (m.filename, m.build_id)),
             *(x for f in pb.function for x in (f.name, f.system_name, f.filename)),
             *(x for s in pb.sample for lab in s.label for x in (lab.key, lab.str))]
    assert all(0 <= i < len(strings) for i in every)
    assert [(strings[vt.type], strings[vt.unit]) for vt in pb.sample_type] == \
        [("samples", "count"), ("cpu", "nanoseconds")]
    assert strings[pb.default_sample_type] == "samples"
    assert (strings[pb.period_type.type], strings[pb.period_type.unit], pb.period) == \
        ("cpu", "nanoseconds", 10_101_010)
    assert pb.time_nanos == p.time_nanos and pb.duration_nanos == p.duration_nanos
    assert [strings[c] for c in pb.comment] == ["Flame Graph", "5 samples, 0 lost"]


def test_mappings_carry_build_ids_and_flags():
    pb = decode(pprof.write(model()))
    strings = pb.string_table
    by_path = {strings[m.filename]: m for m in pb.mapping}
    app = by_path["/usr/bin/app"]
    assert strings[app.build_id] == "aabbccdd"
    assert (app.has_functions, app.has_filenames, app.has_line_numbers,
            app.has_inline_frames) == (True, True, True, True)
    libc = by_path["/usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert strings[libc.build_id] == LIBC_BUILD_ID
    assert (libc.has_functions, libc.has_filenames, libc.has_line_numbers,
            libc.has_inline_frames) == (True, False, False, False)
    assert (libc.memory_start, libc.memory_limit, libc.file_offset) == \
        (0x7F0000000000, 0x7F0000100000, 0x28000)
    assert "[kernel.kallsyms]" in by_path
    # mapping[0] is the main binary for pprof: a file, not the kernel
    assert strings[pb.mapping[0].filename].startswith("/")


def test_the_main_binary_is_mapping_zero():
    """pprof takes mapping[0] for the main binary: the file the samples'
    comm names (the first 15 bytes of its name), not the first seen."""
    p = model()
    libc_first = {i: p.mappings[i] for i in (2, 3, 1, 4)}
    p = dataclasses.replace(p, mappings=libc_first, samples=tuple(
        dataclasses.replace(s, comm="app") for s in p.samples))
    pb = decode(pprof.write(p))
    assert [pb.string_table[m.filename] for m in pb.mapping] == \
        ["/usr/bin/app", "/usr/lib/x86_64-linux-gnu/libc.so.6", "[kernel.kallsyms]", "[anon]"]
    assert pprof.read(pprof.write(p)).mappings == p.mappings


def test_locations_lines_innermost_first_and_unresolved_without_lines():
    pb = decode(pprof.write(model()))
    strings = pb.string_table
    names = {f.id: strings[f.name] for f in pb.function}
    locs = {x.id: x for x in pb.location}
    assert [names[ln.function_id] for ln in locs[1].line] == ["inlined_helper", "work(int)"]
    assert [(ln.line, ln.column) for ln in locs[1].line] == [(5, 7), (22, 0)]
    for i in (4, 6, 8):
        assert list(locs[i].line) == []
    assert (locs[4].address, locs[4].mapping_id) == (0x7F0000002000, 2)
    assert (locs[8].address, locs[8].mapping_id) == (0x1234, 0)
    assert names[locs[7].line[0].function_id] == "LazyCompile:*hot /app.js:1"
    systems = {f.id: strings[f.system_name] for f in pb.function}
    assert systems[2] == "_Z4worki"


def test_labels_pid_tid_comm():
    pb = decode(pprof.write(model()))
    strings = pb.string_table

    def labels(s):
        return {strings[lab.key]: (lab.num if not lab.str else strings[lab.str])
                for lab in s.label}

    got = [labels(s) for s in pb.sample]
    assert got[0] == {"pid": 100, "tid": 101, "comm": "app"}
    assert got[1] == {"pid": 100, "comm": "app"}  # tid only when non-zero
    assert got[3] == {"pid": 300, "comm": "with space"}


# ---------------------------------------------------------------- sample types


def test_sample_index_default_is_default_type_else_last():
    p = model(default="")
    assert pprof.read(pprof.write(dataclasses.replace(p, default_sample_type="cpu"))) \
        .default_sample_type == "cpu"
    pb = profile_pb2.Profile.FromString(pprof.encode(p))
    pb.default_sample_type = 0  # unset: the last type, as go tool pprof does
    assert pprof.read(pb.SerializeToString()).default_sample_type == "cpu"


@pytest.mark.parametrize("wanted, chosen", [("samples", "samples"), ("cpu", "cpu"), (0, "samples"),
                                            (1, "cpu"), ("1", "cpu")])
def test_sample_index_chooses(wanted, chosen):
    back = pprof.read(pprof.write(model()), sample_index=wanted)
    assert back.default_sample_type == chosen
    assert back.samples[0].values == (5, 5 * 10_101_010)  # all values kept


@pytest.mark.parametrize("wanted", ["alloc_space", 2, -1])
def test_sample_index_naming_no_type_lists_the_types(wanted):
    with pytest.raises(OutputError) as err:
        pprof.read(pprof.write(model()), sample_index=wanted)
    assert "0=samples, 1=cpu" in err.value.message


# ---------------------------------------------------------------- bad files


def crafted(edit) -> bytes:
    pb = profile_pb2.Profile.FromString(pprof.encode(model()))
    edit(pb)
    return pb.SerializeToString()


def _set(obj, **fields):
    for k, v in fields.items():
        setattr(obj, k, v)


BAD = {
    "sample names a missing location": (lambda pb: pb.sample[0].location_id.append(99),
                                        "location 99"),
    "location names a missing function": (lambda pb: _set(pb.location[0].line[0], function_id=42),
                                          "function 42"),
    "location names a missing mapping": (lambda pb: _set(pb.location[0], mapping_id=9),
                                         "mapping 9"),
    "string index out of range": (lambda pb: _set(pb.function[0], name=10_000), "string 10000"),
    "negative string index": (lambda pb: _set(pb.mapping[0], filename=-1), "string -1"),
    "label string out of range": (lambda pb: _set(pb.sample[0].label[0], key=777), "string 777"),
    "too few values": (lambda pb: pb.sample[1].value.pop(), "1 values for 2"),
    "too many values": (lambda pb: pb.sample[2].value.append(3), "3 values for 2"),
    "zero location id": (lambda pb: _set(pb.location[1], id=0), "location id 0"),
    "repeated function id": (lambda pb: _set(pb.function[1], id=pb.function[0].id), "repeated"),
    "string table without leading empty": (lambda pb: pb.string_table.__setitem__(0, "x"),
                                           "string table"),
    "no string table": (lambda pb: pb.ClearField("string_table"), "no string table"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_profiles_are_one_clear_error(case):
    edit, words = BAD[case]
    data = crafted(edit)
    for form in (data, gzip.compress(data)):
        with pytest.raises(OutputError) as err:
            pprof.read(form)
        assert words in err.value.message and err.value.remedy


def test_sparse_location_ids_are_checked_too():
    def edit(pb):
        for loc in pb.location:
            loc.id += 1000
        for s in pb.sample:
            s.location_id[:] = [i + 1000 for i in s.location_id]
        pb.sample[0].location_id.append(5)
    with pytest.raises(OutputError, match="location 5,"):
        pprof.read(crafted(edit))
    ok = crafted(lambda pb: None)
    assert pprof.read(ok).samples[0].locations == (1, 2, 3)


@pytest.mark.parametrize("data, words", [
    (gzip.compress(b"\x0a\x04\x08\x01\x10\x02")[:-6], "truncated"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"garbage that is no deflate", "corrupt"),
    (b"not a protobuf at all \xff\xff\xff", "does not decode"),
    (b"", "no string table"),
    (b"\x08\x96\x01", "no string table"),  # another message: wrong wire type, no table
    (gzip.compress(b"\x0a\x02\x08\x01") + b"trailing", "after its gzip stream"),
])
def test_not_pprof(data, words):
    with pytest.raises(OutputError, match=words):
        pprof.read(data)


def test_a_gigabyte_claim_of_strings_is_refused_fast():
    # string_table (field 6, length-delimited) claiming 1 GB, then a few bytes
    claim = b"\x32" + _varint(1 << 30) + b"abc"
    for data in (claim, gzip.compress(claim)):
        started = time.monotonic()
        with pytest.raises(OutputError):
            pprof.read(data)
        assert time.monotonic() - started < 1


def test_inflating_beyond_the_bound_is_refused(monkeypatch):
    monkeypatch.setattr(pprof, "MAX_DECOMPRESSED", 1 << 20)
    bomb = gzip.compress(b"\0" * (4 << 20))
    with pytest.raises(OutputError, match="inflates beyond 1 MB"):
        pprof.read(bomb)
    assert pprof.read(gzip.compress(pprof.encode(model()))).samples  # small ones still read


def test_the_bound_stops_inflating_early(monkeypatch):
    """The refusal comes after about the bound, not after inflating it all."""
    monkeypatch.setattr(pprof, "MAX_DECOMPRESSED", 1 << 20)
    seen = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self, *a):
            self._d = real(*a)

        def decompress(self, data, max_length=0):
            out = self._d.decompress(data, max_length)
            seen.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._d, name)

    monkeypatch.setattr(pprof.zlib, "decompressobj", Spy)
    with pytest.raises(OutputError):
        pprof.read(gzip.compress(b"\0" * (64 << 20), compresslevel=1))
    assert sum(seen) <= 2 << 20


def test_concatenated_gzip_members():
    data = pprof.encode(model())
    half = len(data) // 2
    joined = gzip.compress(data[:half]) + gzip.compress(data[half:]) + b"\0" * 8
    assert pprof.read(joined) == pprof.read(data)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# ---------------------------------------------------------------- properties

VALID_RAW = pprof.encode(model())
VALID_GZ = pprof.write(model())


def _read_or_error(data: bytes) -> None:
    try:
        pprof.read(data)
    except OutputError as err:
        assert err.message and err.remedy


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_give_a_profile_or_one_error(data):
    _read_or_error(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_random_gzip_payloads_give_a_profile_or_one_error(data):
    _read_or_error(gzip.compress(data))
    _read_or_error(b"\x1f\x8b" + data)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from([VALID_RAW, VALID_GZ]), st.data())
def test_corrupted_valid_files_give_a_profile_or_one_error(base, data):
    edit = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    buf = bytearray(base)
    if edit == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= data.draw(st.integers(1, 255))
    elif edit == "truncate":
        del buf[data.draw(st.integers(0, len(buf) - 1)):]
    elif edit == "extend":
        buf += data.draw(st.binary(min_size=1, max_size=64))
    else:
        i = data.draw(st.integers(0, len(buf)))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    _read_or_error(bytes(buf))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_fields_of_a_valid_profile(data):
    """Valid protobuf, wrong contents: random ids and string indexes."""
    pb = profile_pb2.Profile.FromString(VALID_RAW)
    big = st.integers(-(1 << 40), 1 << 40)
    ids = st.integers(0, 1 << 40)
    for _ in range(data.draw(st.integers(1, 5))):
        what = data.draw(st.sampled_from(["sample_loc", "loc_map", "line_fn", "fn_name",
                                          "map_file", "label", "value", "default", "loc_id"]))
        if what == "sample_loc":
            pb.sample[data.draw(st.integers(0, len(pb.sample) - 1))].location_id.append(
                data.draw(ids))
        elif what == "loc_map":
            pb.location[data.draw(st.integers(0, len(pb.location) - 1))].mapping_id = \
                data.draw(ids)
        elif what == "line_fn":
            pb.location[0].line[0].function_id = data.draw(ids)
        elif what == "fn_name":
            pb.function[data.draw(st.integers(0, len(pb.function) - 1))].name = data.draw(big)
        elif what == "map_file":
            pb.mapping[0].filename = data.draw(big)
        elif what == "label":
            pb.sample[0].label[0].str = data.draw(big)
        elif what == "value":
            pb.sample[0].value.append(data.draw(big))
        elif what == "default":
            pb.default_sample_type = data.draw(big)
        else:
            pb.location[data.draw(st.integers(0, len(pb.location) - 1))].id = data.draw(ids)
    _read_or_error(pb.SerializeToString())
