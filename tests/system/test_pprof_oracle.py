"""pprof checked against Go's own reader, `go tool pprof` (Debian's golang-go).

- Files we write: `-traces` shows the stacks (names, order, inline frames)
  and totals the model has, `-raw` the exact values of every sample type.
- A file we did not write: a Go benchmark's `go test -cpuprofile`, built
  offline in a temporary directory; `read` gives the stacks `-traces` gives,
  Go's inlined functions included as frames of their own.
- Recorded by us (root, BPF): one recording reported as folded stacks and
  as pprof; `-traces` shows the folded output's stacks and totals, and the
  main binary's mapping carries its build-id (`readelf -n`).

Every `go tool pprof` call passes `-symbolize=none`: otherwise pprof would
name our unresolved frames itself from the binaries on this machine.
"""
from __future__ import annotations

import collections
import os
import random
import re
import shutil
import subprocess

import pytest

from conftest import require
from profiler.export import pprof
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping, Profile,
                                    Sample, ValueType, sample_index)
from sysutil import bpf_ready, run_profiler, workloads  # noqa: F401

SEPARATOR = "-----------+-------------------------------------------------------"
HERE = os.path.dirname(os.path.abspath(__file__))
GO_FIXTURE = os.path.join(HERE, "..", "data", "pprof", "go_cpu.pprof")


@pytest.fixture(scope="module")
def go() -> str:
    path = shutil.which("go")
    require(path is not None, "needs go (golang-go)")
    return path


def go_env(tmp) -> dict[str, str]:
    return {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local",
            "GOCACHE": str(tmp / "gocache"), "GOPATH": str(tmp / "gopath"),
            "HOME": str(tmp), "CGO_ENABLED": "0"}


def go_pprof(go: str, *args: str, env=None) -> str:
    done = subprocess.run([go, "tool", "pprof", "-symbolize=none", *args], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def parse_traces(text: str) -> collections.Counter:
    """`go tool pprof -traces`: stack (leaf first, as printed, inline frames
    suffixed " (inline)") -> total. Label lines (`key:  value`) are skipped."""
    totals: collections.Counter = collections.Counter()
    blocks = text.split(SEPARATOR)
    for block in blocks[1:]:
        frames, value = [], None
        for line in block.splitlines():
            if not line.strip() or line[10:13] == ":  ":
                continue
            head, name = line[:10].strip(), line[13:]
            if head:
                value = int(head)
            frames.append(name)
        if frames:
            totals[tuple(frames)] += value
    return totals


def expected_traces(profile: Profile, index: int) -> collections.Counter:
    """What -traces should print for a profile: per location its lines
    innermost first, all but the outermost " (inline)"; a location without
    lines shows its mapping's base name in brackets, or <unknown>."""
    totals: collections.Counter = collections.Counter()
    for s in profile.samples:
        frames = []
        for lid in s.locations:
            loc = profile.locations[lid]
            if not loc.lines:
                m = profile.mappings.get(loc.mapping_id)
                # A label a reader could not rebuild from the mapping (module
                # + file offset) is written as a function of that name.
                rebuilt = f"{os.path.basename(m.path)}+0x{loc.address - m.start + m.offset:x}" \
                    if m else f"[unknown]+0x{loc.address:x}"
                if loc.label and loc.label != rebuilt:
                    frames.append(loc.label)
                else:
                    frames.append(f"[{os.path.basename(m.path)}]" if m else "<unknown>")
                continue
            n = len(loc.lines)
            frames.extend(profile.functions[ln.function_id].name + (" (inline)" if i < n - 1
                                                                     else "")
                          for i, ln in enumerate(loc.lines))
        if s.values[index]:
            totals[tuple(frames)] += s.values[index]
    return totals


def raw_totals(text: str) -> list[int]:
    """The sum of each sample type's values, from `go tool pprof -raw`."""
    lines = text.splitlines()
    start = lines.index("Samples:") + 2
    sums: list[int] = []
    for line in lines[start:]:
        if line.startswith("Locations"):
            break
        m = re.match(r"^\s+((?:-?\d+\s+)*-?\d+):", line)
        if m:
            values = [int(v) for v in m.group(1).split()]
            sums = [a + b for a, b in zip(sums, values)] if sums else values
    return sums


# ---------------------------------------------------------------- our files


def synthetic(seed: int, samples: int = 300) -> Profile:
    """Random stacks over every kind of location the model has."""
    rnd = random.Random(seed)
    mappings = {
        1: Mapping(id=1, start=0x400000, limit=0x500000, path="/opt/app/bin/app",
                   build_id="feedface" * 5, has_functions=True, has_inline_frames=True),
        2: Mapping(id=2, start=0x7F0000000000, limit=0x7F0000200000, offset=0x1000,
                   path="/lib/libz.so.1", build_id="00ff" * 10, has_functions=True),
        3: Mapping(id=3, start=0xFFFFFFFF81000000, limit=0xFFFFFFFF83000000,
                   path="[kernel.kallsyms]", has_functions=True),
        4: Mapping(id=4, start=0x7E0000000000, limit=0x7E0000100000, path="[anon]",
                   has_functions=True),
    }
    functions = {i: Function(id=i, name=f"fn_{i}::run(int, char*)", system_name=f"_Z{i}")
                 for i in range(1, 61)}
    locations = {}
    for i in range(1, 121):
        mid = rnd.choice([0, 1, 1, 1, 2, 3, 4])
        m = mappings.get(mid)
        address = (m.start + rnd.randrange(0x1000, 0x80000)) if m else rnd.randrange(1, 1 << 40)
        kind = FrameKind.KERNEL if mid == 3 else FrameKind.JIT if mid == 4 else FrameKind.USER
        if rnd.random() < 0.15:
            locations[i] = Location(id=i, mapping_id=mid, address=address, kind=kind,
                                    label="x", unresolved="no symbol")
        else:
            depth = rnd.choice([1, 1, 1, 2, 3]) if mid == 1 else 1
            lines = tuple(Line(function_id=rnd.randrange(1, 61), line=rnd.randrange(1, 999))
                          for _ in range(depth))
            locations[i] = Location(id=i, mapping_id=mid, address=address, kind=kind,
                                    lines=lines)
    kernel = [i for i, l in locations.items() if l.kind is FrameKind.KERNEL]
    user = [i for i, l in locations.items() if l.kind is not FrameKind.KERNEL]
    out = []
    for _ in range(samples):
        stack = [rnd.choice(user) for _ in range(rnd.randrange(1, 30))]
        if rnd.random() < 0.3:
            stack = [rnd.choice(kernel) for _ in range(rnd.randrange(1, 6))] + stack
        n = rnd.randrange(1, 50)
        out.append(Sample(locations=tuple(stack), values=(n, n * 1_001_001),
                          pid=rnd.randrange(1, 5), tid=rnd.randrange(0, 3), comm="app"))
    return Profile(sample_types=(ValueType("samples", "count"), ValueType("cpu", "nanoseconds")),
                   samples=tuple(out), locations=locations, functions=functions,
                   mappings=mappings, period_type=ValueType("cpu", "nanoseconds"),
                   period=1_001_001, time_nanos=1_700_000_000_000_000_000,
                   duration_nanos=3_000_000_000, default_sample_type="samples")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_go_pprof_shows_the_stacks_and_totals_we_wrote(go, tmp_path, seed):
    profile = synthetic(seed)
    path = tmp_path / "ours.pb.gz"
    path.write_bytes(pprof.write(profile))
    got = parse_traces(go_pprof(go, "-traces", "-sample_index=samples", str(path)))
    assert got == expected_traces(profile, 0)
    # -raw: every sample type's exact total
    raw = go_pprof(go, "-raw", str(path))
    assert raw_totals(raw) == [sum(s.values[i] for s in profile.samples) for i in range(2)]
    assert "samples/count[dflt] cpu/nanoseconds" in raw
    # the file Go re-encodes reads back to the same stacks
    again = tmp_path / "again.pb.gz"
    go_pprof(go, "-proto", "-output", str(again), str(path))
    back = pprof.read(again.read_bytes())
    assert expected_traces(back, 0) == expected_traces(profile, 0)


def test_go_pprof_reads_flags_build_ids_and_labels(go, tmp_path):
    profile = synthetic(7, samples=20)
    path = tmp_path / "ours.pb"
    path.write_bytes(pprof.encode(profile))  # uncompressed: Go reads that too
    raw = go_pprof(go, "-raw", str(path))
    mappings = raw[raw.index("Mappings"):]
    assert f"/opt/app/bin/app {'feedface' * 5} [FN][IN]" in mappings
    assert f"/lib/libz.so.1 {'00ff' * 10} [FN]" in mappings
    assert "[kernel.kallsyms]" in mappings
    assert "PeriodType: cpu nanoseconds" in raw and "Period: 1001001" in raw
    assert "Duration: 3s" in raw
    traces = go_pprof(go, "-traces", str(path))
    assert "comm:  app" in traces and re.search(r"pid:  \d", traces)


# ---------------------------------------------------------------- Go's files

GO_MOD = "module bench\n\ngo 1.19\n"
GO_TEST = """package bench

import "testing"

var sink int

// mix is small enough for Go to inline into middle.
func mix(x int) int {
	for j := 0; j < 64; j++ {
		x = x*31 + j ^ (x >> 7)
	}
	return x
}

//go:noinline
func leaf(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i*i ^ (s >> 3)
	}
	return s
}

//go:noinline
func middle(n int) int {
	t := 0
	for i := 0; i < 50; i++ {
		t += mix(leaf(n) + i)
	}
	return t
}

func BenchmarkWork(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sink += middle(200)
	}
}
"""


def go_cpu_profile(go: str, tmp) -> str:
    """`go test -cpuprofile` of a tiny CPU-bound benchmark, built offline."""
    src = tmp / "bench"
    src.mkdir()
    (src / "go.mod").write_text(GO_MOD)
    (src / "bench_test.go").write_text(GO_TEST)
    done = subprocess.run([go, "test", "-run=NONE", "-bench=.", "-benchtime=2s",
                           "-cpuprofile", "cpu.pprof"], cwd=src, capture_output=True,
                          text=True, env=go_env(tmp), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(src / "cpu.pprof")


def leaf_first_frames(profile: Profile) -> collections.Counter:
    return expected_traces(profile, sample_index(profile, None))


@pytest.mark.slow
def test_a_go_cpu_profile_reads_as_go_tool_pprof_shows_it(go, tmp_path):
    path = go_cpu_profile(go, tmp_path)
    data = open(path, "rb").read()
    assert data[:2] == b"\x1f\x8b"
    profile = pprof.read(data)
    assert [(t.type, t.unit) for t in profile.sample_types] == \
        [("samples", "count"), ("cpu", "nanoseconds")]
    assert profile.default_sample_type == "cpu"  # the last, as go tool pprof
    assert all(s.comm == "" and s.pid == 0 for s in profile.samples)
    counts = pprof.read(data, sample_index="samples")
    assert counts.default_sample_type == "samples"
    got = parse_traces(go_pprof(go, "-traces", "-sample_index=samples", path))
    assert leaf_first_frames(counts) == got
    assert sum(got.values()) > 50
    raw = go_pprof(go, "-raw", path)
    assert raw_totals(raw) == [sum(s.values[i] for s in profile.samples) for i in range(2)]
    # Go's inlined function is a frame of its own: a location with two lines
    names = {f.name for f in profile.functions.values()}
    assert {"bench.mix", "bench.middle", "bench.leaf"} <= names
    inlined = [loc for loc in profile.locations.values() if len(loc.lines) > 1]
    assert any(profile.functions[loc.lines[0].function_id].name == "bench.mix"
               for loc in inlined)
    assert any("bench.mix (inline)" in stack for stack in got)
    # and folded output gets the inline frame marked
    from profiler.export.folded import fold
    lines = fold(counts)
    assert any("bench.middle;bench.mix_[i]" in line for line in lines)


def test_the_committed_go_profile_reads_as_go_tool_pprof_showed_it():
    """tests/data/pprof/go_cpu.pprof (see its README): no Go needed."""
    data = open(GO_FIXTURE, "rb").read()
    profile = pprof.read(data, sample_index="samples")
    expected = parse_traces(open(GO_FIXTURE + ".traces").read())
    assert leaf_first_frames(profile) == expected


# ---------------------------------------------------------------- recorded by us


def folded_as_traces(text: str) -> collections.Counter:
    """Our folded lines as -traces prints them: no comm frame, leaf first,
    without the `_[k]`/`_[j]` suffixes; `_[i]` frames are inlined into the
    frame before them, which pprof prints as " (inline)" on the callee."""
    totals: collections.Counter = collections.Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")[1:]
        out = []
        for f in frames:
            if f.endswith("_[i]"):  # the callee inlined: its line comes first in the location
                out.append(f[:-4] + " (inline)")
            else:
                out.append(re.sub(r"_\[[kj]\]$", "", f))
        totals[tuple(reversed(out))] += int(count)
    return totals


def readelf_build_id(path: str) -> str:
    done = subprocess.run(["readelf", "-n", path], capture_output=True, text=True, check=True)
    return re.search(r"Build ID: ([0-9a-f]+)", done.stdout).group(1)


@pytest.mark.root
def test_a_recording_as_pprof_shows_the_folded_stacks(go, bpf_ready, workloads, tmp_path):
    require(shutil.which("readelf") is not None, "needs readelf (binutils)")
    raw = tmp_path / "x.json"
    run = run_profiler("record", "-F", "499", "-o", str(raw), "--", workloads["fp_chain"], "2")
    assert run.returncode == 0, run.stderr
    folded, pb = tmp_path / "y.folded", tmp_path / "y.pb.gz"
    for out in (folded, pb):
        run = run_profiler("report", str(raw), "-o", str(out))
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    assert pb.read_bytes()[:2] == b"\x1f\x8b"
    want = folded_as_traces(folded.read_text())
    assert sum(want.values()) > 300
    traces = go_pprof(go, "-traces", "-sample_index=samples", str(pb))
    assert traces.startswith("File: fp_chain\n")  # mapping[0] is the main binary
    got = parse_traces(traces)
    # names pprof gives unresolved frames differ from ours ([libc.so.6] for
    # libc.so.6+0x1234): compare what both name, and every total
    assert sum(got.values()) == sum(want.values())
    named = {k: v for k, v in want.items()
             if not any("+0x" in f or f.startswith("[") for f in k)}  # [truncated] too
    got_named = {k: v for k, v in got.items() if not any(f.startswith(("[", "<")) for f in k)}
    assert named == got_named
    assert any(("chain_leaf", "chain_middle", "chain_outer", "main") == k[:4]
               for k in got), list(got)[:5]
    # the same recording read back from pprof folds to the same lines
    back = run_profiler("report", str(pb), "-o", str(tmp_path / "z.folded"))
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "z.folded").read_text() == folded.read_text()  # raw -> pprof -> folded
    # mappings: the workload's build-id and truthful flags
    text = go_pprof(go, "-raw", str(pb))
    mappings = text[text.index("Mappings"):].splitlines()[1:]
    exe = os.path.realpath(workloads["fp_chain"])
    mine = [m for m in mappings if f" {exe} " in m]
    assert mine, mappings
    assert readelf_build_id(exe) in mine[0]
    assert "[FN]" in mine[0]  # its functions were named
    kernel = [m for m in mappings if "[kernel.kallsyms]" in m]
    assert not kernel or "[FN]" in kernel[0]
    from profiler.export.folded import fold
    ours = pprof.read(pb.read_bytes(), sample_index="samples")
    assert "[LN]" not in "".join(mappings) or any(loc.lines and loc.lines[0].line
                                                  for loc in ours.locations.values())
    assert sum(int(l.rpartition(" ")[2]) for l in fold(ours)) == sum(want.values())
