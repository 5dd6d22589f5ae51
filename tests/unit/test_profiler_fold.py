"""Folded output from the profile model: canonical lines, grouping, kinds."""
from profiler.export.folded import fold, read
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping, Profile,
                                    Sample, ValueType)
from profiler.options import Grouping


def _profile(samples, kinds=None):
    """Samples as (comm, root-first names, count, pid, tid); a name ending in
    '!' is a kernel frame."""
    functions, locations, out = {}, {}, []
    for comm, names, count, pid, tid in samples:
        ids = []
        for name in names:
            kind = FrameKind.KERNEL if name.endswith("!") else FrameKind.USER
            name = name.rstrip("!")
            fid = next((f.id for f in functions.values() if f.name == name), None)
            if fid is None:
                fid = len(functions) + 1
                functions[fid] = Function(id=fid, name=name)
            lid = len(locations) + 1
            locations[lid] = Location(id=lid, lines=(Line(function_id=fid),), kind=kind)
            ids.append(lid)
        out.append(Sample(locations=tuple(reversed(ids)), values=(count, count * 10),
                          pid=pid, tid=tid, comm=comm))
    return Profile(sample_types=(ValueType("samples", "count"), ValueType("cpu", "nanoseconds")),
                   samples=tuple(out), locations=locations, functions=functions, mappings={},
                   default_sample_type="samples")


def s(comm, names, n, pid=10, tid=11):
    return (comm, names, n, pid, tid)


def test_canonical_folded_lines():
    p = _profile([s("b", ["main", "f;g", "sys_read!"], 2), s("a", ["main"], 1),
                  s("b", ["main", "f;g", "sys_read!"], 3)])
    assert fold(p) == ["a;main 1", "b;main;f:g;sys_read_[k] 5"]
    assert fold(p, value="cpu") == ["a;main 10", "b;main;f:g;sys_read_[k] 50"]


def test_process_and_thread_grouping():
    p = _profile([s("app", ["main"], 1, pid=7, tid=8)])
    assert fold(p, Grouping.PROCESS) == ["app-7;main 1"]
    assert fold(p, Grouping.THREAD) == ["app-7/8;main 1"]


def test_order_is_independent_of_input_order():
    a = [s("x", ["m", str(i)], i + 1) for i in range(20)]
    assert fold(_profile(a)) == fold(_profile(list(reversed(a)))) == sorted(fold(_profile(a)))


def test_process_names_have_spaces_made_underscores_as_stackcollapse_perf_does():
    p = _profile([s("my app;x", ["main"], 1, pid=7, tid=8)])
    assert fold(p) == ["my_app:x;main 1"]
    assert fold(p, Grouping.THREAD) == ["my_app:x-7/8;main 1"]


def test_unresolved_jit_and_inline_frames():
    functions = {1: Function(id=1, name="main"), 2: Function(id=2, name="parse"),
                 3: Function(id=3, name="hotLoop")}
    locations = {
        1: Location(id=1, mapping_id=1, address=0x1234, label="app+0x234", unresolved="no symbol"),
        2: Location(id=2, lines=(Line(function_id=2), Line(function_id=1))),  # parse in main
        3: Location(id=3, lines=(Line(function_id=3),), kind=FrameKind.JIT),
    }
    p = Profile(sample_types=(ValueType("samples", "count"),),
                samples=(Sample(locations=(3, 2, 1), values=(4,), comm="app", pid=1),),
                locations=locations, functions=functions,
                mappings={1: Mapping(id=1, path="/bin/app")})
    assert fold(p) == ["app;app+0x234;main;parse_[i];hotLoop_[j] 4"]


def test_another_tools_profile_has_no_process_frame_and_reads_back():
    lines = ["main;work;leaf_[k] 3", "main;idle 2", "bad line"]
    p = read("\n".join(lines).encode())
    assert fold(p) == ["main;idle 2", "main;work;leaf_[k] 3"]
