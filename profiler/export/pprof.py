"""Profile <-> pprof (google/pprof's profile.proto), gzip-compressed.

`write(profile)` translates the model field for field: sample types, period,
time and duration; samples with their values and `pid`/`tid` (numeric) and
`comm` (string) labels; locations with address, mapping and one Line per
inline level, innermost first (profile.proto: "the last entry represents the
caller into which the preceding entries were inlined", as the model keeps
them); an unresolved location has no lines and keeps its address and
mapping, which pprof viewers show as the address in that mapping. Mappings
carry the build-id and the has_* flags the model gives them.

`read(data)` takes any producer's pprof, gzipped or not (Go's runtime, ours,
perf_to_profile ...) and checks what it relies on: every id points at
something, every string index is in the table, every sample has one value
per sample type. A bad file is one OutputError, never a traceback; a gzip
stream is inflated in bounded steps and refused past MAX_DECOMPRESSED.
"""
from __future__ import annotations

import os
import zlib

from profiler.binary.addresses import AbsAddr, file_offset
from profiler.errors import OutputError
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping, Meta,
                                    Profile, Sample, ValueType, sample_index as _sample_index,
                                    with_sample_type)

MAX_DECOMPRESSED = 512 << 20  # bytes a gzipped profile may inflate to
GZIP_LEVEL = 6  # as Go's compress/gzip default (pprof's own writer)
KERNEL_MAPPING = "[kernel.kallsyms]"
# Anonymous executable memory: a named location there was named by a JIT's
# perf map, which is how a JIT frame survives the round trip.
_ANON_PATHS = ("[anon]", "//anon")

REMEDY = ("give a pprof profile as written by `profiler record -o x.pb.gz`, "
          "`go test -cpuprofile` or `go tool pprof -proto`")


def _proto():
    from profiler.export.pprof_proto import profile_pb2
    return profile_pb2


# ---------------------------------------------------------------- writing


def write(profile: Profile, **_ignored) -> bytes:
    """The gzip-compressed pprof encoding of `profile`."""
    return gzip_bytes(encode(profile))


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """A gzip member with mtime 0, so equal profiles give equal bytes."""
    import gzip
    return gzip.compress(data, compresslevel=level, mtime=0)


def encode(profile: Profile) -> bytes:
    """The uncompressed protobuf of `profile`."""
    pb2 = _proto()
    table: dict[str, int] = {"": 0}

    def s(text: str) -> int:
        i = table.get(text)
        if i is None:
            i = table[text] = len(table)
        return i

    out = pb2.Profile()
    for vt in profile.sample_types:
        out.sample_type.add(type=s(vt.type), unit=s(vt.unit))
    _write_samples(out, profile, s, pb2)
    for m in _main_binary_first(profile):
        _check_id(m.id, "mapping")
        out.mapping.add(id=m.id, memory_start=m.start, memory_limit=m.limit,
                        file_offset=m.offset, filename=s(m.path), build_id=s(m.build_id),
                        has_functions=m.has_functions, has_filenames=m.has_filenames,
                        has_line_numbers=m.has_line_numbers,
                        has_inline_frames=m.has_inline_frames)
    add_location = out.location.add
    Line_ = pb2.Line
    add_function = out.function.add
    # An unresolved frame is a location without lines (a viewer shows its
    # module and offset, and may symbolize it later), unless what we show
    # for it cannot be rebuilt from its mapping ("[unmapped]+0x…", a hidden
    # kernel address): then a function of that name keeps the text.
    shown: dict[str, int] = {}
    next_function = max(profile.functions, default=0) + 1
    for loc in profile.locations.values():
        if loc.lines:
            add_location(id=loc.id, mapping_id=loc.mapping_id, address=loc.address,
                         line=[Line_(function_id=ln.function_id, line=ln.line,
                                     column=ln.column) for ln in loc.lines])
        elif loc.label and loc.label != _label(profile.mappings.get(loc.mapping_id),
                                               loc.address):
            fid = shown.get(loc.label)
            if fid is None:
                fid = shown[loc.label] = next_function
                next_function += 1
                add_function(id=fid, name=s(loc.label))
            add_location(id=loc.id, mapping_id=loc.mapping_id, address=loc.address,
                         line=[Line_(function_id=fid)])
        else:
            add_location(id=loc.id, mapping_id=loc.mapping_id, address=loc.address)
    for f in profile.functions.values():
        add_function(id=f.id, name=s(f.name), system_name=s(f.system_name),
                     filename=s(f.filename), start_line=f.start_line)
    for ids, what in ((profile.locations, "location"), (profile.functions, "function")):
        if ids and min(ids) <= 0:
            _check_id(min(ids), what)
    if profile.period_type is not None:
        out.period_type.type = s(profile.period_type.type)
        out.period_type.unit = s(profile.period_type.unit)
    out.period = profile.period
    out.time_nanos = profile.time_nanos
    out.duration_nanos = profile.duration_nanos
    if profile.sample_types:
        index = _sample_index(profile, None)
        out.default_sample_type = s(profile.sample_types[index].type)
    meta = profile.meta
    out.comment.extend(s(line) for line in (meta.title, *meta.summary) if line)
    out.string_table.extend(table)  # insertion order is index order
    return out.SerializeToString()


def _main_binary_first(profile: Profile) -> list[Mapping]:
    """The mappings, the main binary first (pprof takes mapping[0] for it):
    the file named as the processes of the most samples are (a comm is the
    first 15 bytes of the executable's name), else the first file; files
    before pseudo-mappings like [kernel.kallsyms]; the model's order otherwise."""
    weight: dict[str, int] = {}
    for smp in profile.samples:
        if smp.comm:
            weight[smp.comm] = weight.get(smp.comm, 0) + 1
    def rank(m: Mapping) -> tuple[int, int]:
        if not m.path.startswith("/"):
            return (1, 0)
        return (0, -weight.get(os.path.basename(m.path)[:15], 0))
    return sorted(profile.mappings.values(), key=rank)  # stable: ties keep their order


def _check_id(i: int, what: str) -> None:
    if i <= 0:
        raise ValueError(f"pprof needs non-zero {what} ids, the profile has {what} id {i}")


def _write_samples(out, profile: Profile, s, pb2) -> None:
    width = len(profile.sample_types)
    key_pid, key_tid, key_comm = s("pid"), s("tid"), s("comm")
    Label = pb2.Label
    labels_of: dict[tuple[int, int, str], list] = {}
    add = out.sample.add
    for smp in profile.samples:
        if len(smp.values) != width:
            raise ValueError(f"a sample has {len(smp.values)} values for {width} sample types")
        key = (smp.pid, smp.tid, smp.comm)
        labels = labels_of.get(key)
        if labels is None:
            labels = [Label(key=key_pid, num=smp.pid)]
            if smp.tid:
                labels.append(Label(key=key_tid, num=smp.tid))
            labels.append(Label(key=key_comm, str=s(smp.comm)))
            labels_of[key] = labels
        add(location_id=smp.locations, value=smp.values, label=labels)


# ---------------------------------------------------------------- reading


def read(data: bytes, *, sample_index: str | int | None = None) -> Profile:
    """Any producer's pprof (gzipped or raw protobuf) as a Profile. All
    values are kept; `sample_index` (a type's name or an index; default the
    file's default type, else the last) becomes `default_sample_type`."""
    raw = decompress(bytes(data))
    try:
        pb = _proto().Profile.FromString(raw)
    except Exception as err:  # upb's DecodeError, or anything else it raises
        raise OutputError(f"not a pprof profile: the protobuf does not decode ({err})",
                          REMEDY) from None
    return _Reader(pb).profile(sample_index)


def decompress(data: bytes) -> bytes:
    """The protobuf inside: gunzipped in bounded steps if gzip, else as is."""
    if data[:2] != b"\x1f\x8b":
        if len(data) > MAX_DECOMPRESSED:
            raise OutputError(f"the pprof profile is larger than {MAX_DECOMPRESSED >> 20} MB",
                              REMEDY)
        return data
    chunks: list[bytes] = []
    total = 0
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        while True:
            try:
                chunk = d.decompress(pending, 1 << 20)
            except zlib.error as err:
                raise OutputError(f"the pprof profile's gzip data is corrupt ({err})",
                                  REMEDY) from None
            total += len(chunk)
            if total > MAX_DECOMPRESSED:
                raise OutputError(
                    f"the pprof profile inflates beyond {MAX_DECOMPRESSED >> 20} MB: refused",
                    "is it really a profile? split it or give a smaller one")
            chunks.append(chunk)
            pending = d.unconsumed_tail
            if d.eof or not pending and not chunk:
                break
        if not d.eof:
            raise OutputError("the pprof profile is truncated (its gzip stream ends early)",
                              "the file was cut short: copy or record it again")
        rest = d.unused_data
        if rest.strip(b"\0") == b"":
            break  # padding after the last member
        if rest[:2] != b"\x1f\x8b":
            raise OutputError("the pprof profile has data after its gzip stream", REMEDY)
    return b"".join(chunks)


def _bad(what: str) -> OutputError:
    return OutputError(f"not a valid pprof profile: {what}", REMEDY)


class _Reader:
    def __init__(self, pb) -> None:
        self.pb = pb
        self.strings = list(pb.string_table)
        if not self.strings:
            raise _bad("it has no string table")
        if self.strings[0] != "":
            raise _bad("its string table does not start with \"\"")

    def s(self, i: int, what: str) -> str:
        if 0 <= i < len(self.strings):
            return self.strings[i]
        raise _bad(f"{what} names string {i}, the table has {len(self.strings)}")

    def profile(self, wanted: str | int | None) -> Profile:
        pb, s = self.pb, self.s
        types = tuple(ValueType(s(vt.type, "a sample type"), s(vt.unit, "a sample type"))
                      for vt in pb.sample_type)
        mappings = self._mappings()
        functions = self._functions()
        locations = self._locations(mappings, functions)
        samples = self._samples(len(types), locations)
        period_type = None
        if pb.HasField("period_type"):
            period_type = ValueType(s(pb.period_type.type, "the period type"),
                                    s(pb.period_type.unit, "the period type"))
        default = s(pb.default_sample_type, "the default sample type")
        for i in (pb.drop_frames, pb.keep_frames, pb.doc_url, *pb.comment):
            s(i, "a comment or frame filter")
        unresolved = sum(1 for loc in locations.values() if loc.unresolved)
        profile = Profile(sample_types=types, samples=samples, locations=locations,
                          functions=functions, mappings=mappings, period_type=period_type,
                          period=pb.period, time_nanos=pb.time_nanos,
                          duration_nanos=pb.duration_nanos, default_sample_type=default,
                          meta=Meta(unresolved_frames=unresolved, empty=not samples,
                                    per_thread=any(x.tid for x in samples)))
        return with_sample_type(profile, wanted, "the pprof profile")

    def _mappings(self) -> dict[int, Mapping]:
        out: dict[int, Mapping] = {}
        for m in self.pb.mapping:
            if m.id == 0 or m.id in out:
                raise _bad(f"mapping id {m.id} is {'zero' if m.id == 0 else 'repeated'}")
            out[m.id] = Mapping(id=m.id, start=m.memory_start, limit=m.memory_limit,
                                offset=m.file_offset, path=self.s(m.filename, "a mapping"),
                                build_id=self.s(m.build_id, "a mapping"),
                                has_functions=m.has_functions, has_filenames=m.has_filenames,
                                has_line_numbers=m.has_line_numbers,
                                has_inline_frames=m.has_inline_frames)
        return out

    def _functions(self) -> dict[int, Function]:
        out: dict[int, Function] = {}
        s = self.s
        for f in self.pb.function:
            if f.id == 0 or f.id in out:
                raise _bad(f"function id {f.id} is {'zero' if f.id == 0 else 'repeated'}")
            out[f.id] = Function(id=f.id, name=s(f.name, "a function"),
                                 system_name=s(f.system_name, "a function"),
                                 filename=s(f.filename, "a function"), start_line=f.start_line)
        return out

    def _locations(self, mappings: dict[int, Mapping],
                   functions: dict[int, Function]) -> dict[int, Location]:
        out: dict[int, Location] = {}
        kinds = {i: _kind_of(m.path) for i, m in mappings.items()}
        for loc in self.pb.location:
            lid, mid = loc.id, loc.mapping_id
            if lid == 0 or lid in out:
                raise _bad(f"location id {lid} is {'zero' if lid == 0 else 'repeated'}")
            if mid and mid not in mappings:
                raise _bad(f"location {lid} names mapping {mid}, which does not exist")
            lines = []
            for ln in loc.line:
                fid = ln.function_id
                if fid == 0:
                    continue  # a line without a function names nothing
                if fid not in functions:
                    raise _bad(f"location {lid} names function {fid}, which does not exist")
                lines.append(Line(function_id=fid, line=ln.line, column=ln.column))
            kind = kinds.get(mid, FrameKind.USER)
            if lines:
                if kind is FrameKind.USER and mid and mappings[mid].path in _ANON_PATHS:
                    kind = FrameKind.JIT
                out[lid] = Location(id=lid, mapping_id=mid, address=loc.address,
                                    lines=tuple(lines), kind=kind)
            else:
                out[lid] = Location(id=lid, mapping_id=mid, address=loc.address, kind=kind,
                                    label=_label(mappings.get(mid), loc.address),
                                    unresolved="no symbol")
        return out

    def _samples(self, width: int, locations: dict[int, Location]) -> tuple[Sample, ...]:
        dense = all(i in locations for i in range(1, len(locations) + 1))
        top = len(locations)
        s = self.s
        out = []
        append = out.append
        for n, smp in enumerate(self.pb.sample):
            ids = tuple(smp.location_id)
            if ids:
                if dense:
                    if min(ids) < 1 or max(ids) > top:
                        self._missing(n, ids, locations)
                elif not all(i in locations for i in ids):
                    self._missing(n, ids, locations)
            values = tuple(smp.value)
            if len(values) != width:
                raise _bad(f"sample {n} has {len(values)} values for {width} sample types")
            pid = tid = 0
            comm = ""
            if smp.label:
                for lab in smp.label:
                    name = s(lab.key, "a label")
                    if lab.str:
                        text = s(lab.str, "a label")
                        if name == "comm":
                            comm = text
                    elif lab.num_unit:
                        s(lab.num_unit, "a label")
                    if name == "pid" and not lab.str:
                        pid = lab.num
                    elif name == "tid" and not lab.str:
                        tid = lab.num
            append(Sample(locations=ids, values=values, pid=pid, tid=tid, comm=comm))
        return tuple(out)

    @staticmethod
    def _missing(n: int, ids, locations) -> None:
        bad = next(i for i in ids if i not in locations)
        raise _bad(f"sample {n} names location {bad}, which does not exist")


def _kind_of(path: str) -> FrameKind:
    return FrameKind.KERNEL if path == KERNEL_MAPPING or path.startswith("[kernel") \
        else FrameKind.USER


def _label(mapping: Mapping | None, address: int) -> str:
    """What a folded stack shows for a location nothing names."""
    if mapping is None:
        return f"[unknown]+0x{address:x}"
    offset = file_offset(AbsAddr(address), mapping.start, mapping.offset)
    name = os.path.basename(mapping.path) or "[unknown]"
    return f"{name}+0x{offset:x}"


