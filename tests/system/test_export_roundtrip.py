"""Real recordings travel through pprof and speedscope and come back as the
same folded stacks: raw -> pprof -> folded equals raw -> folded, and raw ->
speedscope -> folded equals the per-process folded stacks (speedscope
profiles are per process)."""
from __future__ import annotations

import pytest

from sysutil import bpf_ready, run_profiler, workloads  # noqa: F401

pytestmark = pytest.mark.root

RECORDINGS = {
    # name: record arguments (after `record -o RAW`)
    "command-dwarf": lambda w: ["-F", "499", "--", w["fp_chain"], "1"],
    "command-fp-kernel": lambda w: ["-F", "499", "--call-graph", "fp", "--", "dd",
                                    "if=/dev/zero", "of=/dev/null", "bs=4k", "count=300000"],
    "system-fp": lambda w: ["-F", "199", "-d", "1"],
    "threads-per-thread": lambda w: ["-F", "499", "--per-thread", "--", w["threads"], "1"],
}


def _report(raw, out, *extra) -> str:
    run = run_profiler("report", str(raw), "-o", str(out), "-q", *extra)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    return out.read_text() if out.suffix in (".folded",) else ""


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_recordings_round_trip_through_pprof_and_speedscope(name, bpf_ready, workloads,
                                                            tmp_path):
    raw = tmp_path / "raw.json"
    run = run_profiler("record", "-q", "-o", str(raw), *RECORDINGS[name](workloads), timeout=90)
    assert run.returncode == 0, run.stderr
    grouping = ["--per-thread"] if name.endswith("per-thread") else []
    direct = _report(raw, tmp_path / "direct.folded", *grouping)
    assert direct.strip(), "nothing recorded"
    _report(raw, tmp_path / "x.pb.gz", *grouping)
    assert _report(tmp_path / "x.pb.gz", tmp_path / "via-pprof.folded", *grouping) == direct
    per_process = _report(raw, tmp_path / "per-pid.folded",
                          *(grouping or ["--per-pid"]))
    _report(raw, tmp_path / "x.speedscope.json", *grouping)
    assert _report(tmp_path / "x.speedscope.json", tmp_path / "via-speedscope.folded") == \
        per_process
