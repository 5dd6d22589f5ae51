"""`profiler report` and `profiler compare` on profiles other tools wrote:
Go's runtime (pprof, with inlined functions) and py-spy (speedscope). The
oracles are the producers' own views of the files: `go tool pprof -traces`
as saved beside the fixture, and the speedscope JSON itself."""
from __future__ import annotations

import collections
import json
import pathlib
import subprocess
import sys

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"
GO = DATA / "pprof" / "go_cpu.pprof"
PYSPY = DATA / "speedscope" / "py-spy.speedscope.json"


def profiler(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True,
                          text=True, timeout=120)


def go_traces() -> collections.Counter:
    """Root-first stacks and counts from `go tool pprof -traces` (leaf first
    there; an inlined callee reads "name (inline)", ours "name_[i]")."""
    out: collections.Counter = collections.Counter()
    for block in (DATA / "pprof" / "go_cpu.pprof.traces").read_text().split("-----------+")[1:]:
        lines = [l.strip() for l in block.splitlines()[1:] if l.strip()]
        if not lines:
            continue
        count, _, leaf = lines[0].partition(" ")
        frames = [leaf.strip(), *lines[1:]]
        names = [f[:-len(" (inline)")] + "_[i]" if f.endswith(" (inline)") else f for f in frames]
        out[tuple(reversed(names))] += int(count)
    return out


def folded(text: str) -> collections.Counter:
    out: collections.Counter = collections.Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        out[tuple(stack.split(";"))] += int(count)
    return out


def test_report_of_a_go_profile_gives_go_tool_pprofs_stacks():
    run = profiler("report", str(GO), "-o", "-", "--sample-index", "samples")
    assert run.returncode == 0, run.stderr
    assert folded(run.stdout) == go_traces()
    assert any("bench.mix_[i]" in stack for stack in folded(run.stdout))  # inlined by Go


def test_the_default_sample_type_is_the_last_as_go_tool_pprof_chooses():
    samples = folded(profiler("report", str(GO), "-o", "-", "--sample-index", "0").stdout)
    default = folded(profiler("report", str(GO), "-o", "-").stdout)
    assert sum(default.values()) > sum(samples.values()) > 0  # cpu nanoseconds
    bad = profiler("report", str(GO), "-o", "-", "--sample-index", "bytes")
    assert bad.returncode == 2 and "no sample type 'bytes'" in bad.stderr
    assert "samples" in bad.stderr and "Traceback" not in bad.stderr


def test_report_of_a_py_spy_file_keeps_its_frames_and_weights():
    doc = json.loads(PYSPY.read_text())
    frames = doc["shared"]["frames"]
    expected: collections.Counter = collections.Counter()
    for prof in doc["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"]):
            # a process frame has its spaces made "_", as stackcollapse-perf writes it
            expected[(prof["name"].replace(" ", "_"), *(frames[i]["name"] for i in stack))] \
                += weight
    run = profiler("report", str(PYSPY), "-o", "-")
    assert run.returncode == 0, run.stderr
    got = folded(run.stdout)
    assert set(got) == set(expected)
    # Weights are kept in the file's time unit, counted in nanoseconds.
    scale = {"seconds": 1e9, "milliseconds": 1e6, "microseconds": 1e3, "nanoseconds": 1}
    unit = {p["unit"] for p in doc["profiles"]}
    assert len(unit) == 1
    samples = sum(len(p["samples"]) for p in doc["profiles"])
    for stack, weight in expected.items():
        assert abs(got[stack] - weight * scale[next(iter(unit))]) \
            <= samples  # a nanosecond of rounding per sample at most


def test_compare_reads_pprof_and_speedscope(tmp_path):
    for path in (GO, PYSPY):
        run = subprocess.run([sys.executable, "-m", "profiler", "compare", str(path), str(path),
                              "--fail-on", "1", "--json", str(tmp_path / "r.json")],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        names = {f["name"] for f in json.loads((tmp_path / "r.json").read_text())["functions"]}
        assert ("bench.leaf" in names) if path == GO else ("busy_a" in names)
        if path == GO:  # counted in samples: the significance test needs counts, not ns
            report = json.loads((tmp_path / "r.json").read_text())
            assert report["baseline"]["total_samples"] == sum(go_traces().values())
