"""Damaged and hostile inputs cost bounded memory and time and end in one
message: raw profiles (wrong types, depths, sizes), perf maps, folded lines;
a missing user stack is counted once; a child that exits before its maps are
read inherits its parent's."""
import json
import os
import signal
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.cli import main as cli
from profiler.errors import OutputError, ProfilerError
from profiler.model.raw import EXTRA_FRAMES, RawProfile
from profiler.symbolize.summary import losses_of
from profiler.symbolize import perfmap

from test_profiler_model import profile


def _doc() -> dict:
    return json.loads(profile().to_json())


# ------------------------------------------------------------------ raw profiles

@pytest.mark.parametrize("damage,words", [
    (lambda d: d["stacks"]["11"].append("0x10"), "stack 11 holds something other"),
    (lambda d: d["counts"][0].__setitem__(5, "4"), "is not a non-negative integer"),
    (lambda d: d["counts"][0].__setitem__(5, -3), "-3 is not a non-negative integer"),
    (lambda d: d["counts"][0].__setitem__(5, 61.5), "61.5 is not a non-negative integer"),
    (lambda d: d["counts"][0].__setitem__(5, True), "is not a non-negative integer"),
    (lambda d: d["counts"].__setitem__(0, [1, 2]), "not a list of 6 fields"),
    (lambda d: d["info"].__setitem__("max_depth", 10 ** 9), "max_depth"),
    (lambda d: d["info"].__setitem__("duration", "long"), "'duration' has a wrong type"),
    (lambda d: d["stats"].__setitem__("samples", -1), "stats"),
    (lambda d: d["processes"]["5"]["snapshots"][0]["entries"][0].__setitem__(0, "x"),
     "memory-map entry of process 5"),
    (lambda d: d.__setitem__("stacks", []), "stacks is not an object"),
])
def test_wrong_types_and_counts_are_one_message(damage, words):
    doc = _doc()
    damage(doc)
    with pytest.raises(OutputError) as err:
        RawProfile.from_json(json.dumps(doc))
    assert words in err.value.message


def test_deeply_nested_json_is_an_error_not_a_recursion_error():
    for text in ("[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000):
        with pytest.raises(OutputError, match="nested too deeply|invalid JSON"):
            RawProfile.from_json(text)


def test_a_million_frame_stack_is_refused_quickly(tmp_path, capsys):
    doc = _doc()
    doc["stacks"]["11"] = list(range(4096, 4096 + 1_000_000))
    raw = tmp_path / "deep.json"
    raw.write_text(json.dumps(doc))
    t0 = time.monotonic()
    status = cli.main(["report", str(raw), "-o", str(tmp_path / "x.svg")])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert status == 2 and "1000000 frames, more than the recorder's" in err
    assert took < 2.0, f"{took:.2f} s"
    print(f"1e6-frame raw profile refused in {took:.3f} s")


def test_a_stack_may_hold_the_unwinders_marker_frames():
    doc = _doc()
    depth = doc["info"]["max_depth"]
    doc["stacks"]["11"] = list(range(0x1000, 0x1000 + depth + EXTRA_FRAMES))
    RawProfile.from_json(json.dumps(doc))
    doc["stacks"]["11"].append(0x9000)
    with pytest.raises(OutputError, match="frames, more than"):
        RawProfile.from_json(json.dumps(doc))


def test_an_oversized_file_is_refused_before_parsing(monkeypatch):
    import profiler.model.raw as model
    monkeypatch.setattr(model, "MAX_RAW_BYTES", 1000)
    with pytest.raises(OutputError, match="larger than"):
        RawProfile.from_json(" " * 1001)


# Anything JSON can hold, put anywhere in a valid profile.
_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=10)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


_ALL_PATHS = list(_paths(_doc()))[1:]


def _mutate(doc, path, action, junk, size):
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = junk
    elif action == "delete":
        del parent[key]
    elif action == "grow" and isinstance(parent[key], list):
        parent[key] = parent[key] * size
    elif action == "deep":
        value = junk
        for _ in range(size):
            value = [value]
        parent[key] = value
    else:
        parent[key] = [parent[key]] * size


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(_ALL_PATHS),
                                    st.sampled_from(["replace", "delete", "grow", "deep", "wrap"]),
                                    _junk, st.integers(0, 300)), min_size=1, max_size=4))
def test_malformed_raw_profiles_never_raise_anything_but_a_profiler_error(mutations):
    doc = _doc()
    for path, action, junk, size in mutations:
        try:
            _mutate(doc, path, action, junk, size)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed the path
    try:
        p = RawProfile.from_json(json.dumps(doc))
    except ProfilerError:
        return
    from profiler.export.folded import fold
    from profiler.options import Grouping
    from profiler.symbolize.build import build_profile
    fold(build_profile(p), Grouping.THREAD if p.info.per_thread else Grouping.PROCESS)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_is_a_profile_or_one_error(text):
    try:
        RawProfile.from_json(text)
    except ProfilerError:
        pass


# ------------------------------------------------------------------ the double count

def test_a_count_whose_user_stack_is_missing_is_counted_once():
    from profiler.model.raw import CountRecord
    p = profile(counts=(CountRecord(pid=5, tid=0, comm="x", user_stack=999, kernel_stack=22,
                                    count=4),))
    losses = losses_of(p)
    assert losses.by_reason["stack missing from the store"] == 4
    assert losses.by_reason["without user stack"] == 0


# ------------------------------------------------------------------ perf maps

def test_a_perf_map_is_read_within_its_budget(tmp_path):
    path = tmp_path / "perf.map"
    with open(path, "wb") as f:
        f.write(b"".join(b"%x 10 jit_%d\n" % (0x10000 + 0x10 * i, i) for i in range(20000)))
        f.write(b"x" * (3 << 20))  # a 3 MB line, no newline yet
        f.write(b"\n1000 10 after_the_long_line\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        whole, dropped = perfmap.read_fd(fd)
        assert len(whole) == 20001 and dropped == 0
        assert whole.lookup(0x1005) == "after_the_long_line"
        budget = 1000 * (perfmap.ENTRY_COST + 16)
        part, dropped = perfmap.read_fd(fd, budget=budget)
        assert 900 < len(part) <= 1001 and dropped > 18000  # counted, not kept
    finally:
        os.close(fd)


def test_kept_perf_maps_warn_once_when_over_the_budget(tmp_path, monkeypatch):
    from profiler.record.procwatch import FileKeeper
    monkeypatch.setattr(perfmap, "MAX_PERF_MAP_MEMORY", 50 * perfmap.ENTRY_COST)
    keeper = FileKeeper()
    for pid in (1, 2):
        path = tmp_path / f"perf-{pid}.map"
        path.write_text("".join(f"{0x1000 + 0x10 * i:x} 10 f{i}\n" for i in range(100)))
        keeper._perf_maps[pid] = os.open(path, os.O_RDONLY)
    try:
        maps = keeper.perf_maps()
    finally:
        keeper.close()
    assert sum(len(m) for m in maps.values()) < 50
    assert len(keeper.warnings) == 1 and "process 1, 2" in keeper.warnings[0]


# ------------------------------------------------------------------ inherited maps

def test_a_child_gone_before_its_maps_are_read_inherits_its_parents():
    """A (forked by us) forks B, which exits at once; A does not reap it.
    B's maps read empty (a zombie): it gets A's last snapshot."""
    from profiler.record.procwatch import ProcessTracker
    r, w = os.pipe()
    a = os.fork()
    if a == 0:
        b = os.fork()
        if b == 0:
            os._exit(0)
        os.write(w, str(b).encode())
        time.sleep(30)
        os._exit(0)
    os.close(w)
    try:
        b = int(os.read(r, 32))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{b}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        tracker = ProcessTracker()
        tracker.snapshot(a)
        tracker.snapshot(b)
        procs = tracker.processes()
        assert b in tracker.inherited and procs[b].exited and not procs[b].kernel_thread
        assert procs[b].snapshots == procs[a].snapshots[-1:]
        tracker.files.close()
    finally:
        os.kill(a, signal.SIGKILL)
        os.waitpid(a, 0)
        os.close(r)


def test_an_oversized_profile_of_any_kind_is_one_message(tmp_path, monkeypatch):
    """report and compare read folded, pprof and speedscope inputs through
    one reader: a file over the limit is refused before it is parsed."""
    from profiler.errors import BadProfileError
    from profiler.export import inputs
    monkeypatch.setattr(inputs, "MAX_RAW_BYTES", 1000)
    for name, data in (("big.folded", b"main;work 1\n" * 200), ("big.pb.gz", b"\x1f\x8b" * 600),
                       ("big.speedscope.json", b"{" + b" " * 1200)):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(BadProfileError, match="larger than"):
            inputs.read_input(str(path))
