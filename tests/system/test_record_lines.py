"""A real recording of a program whose hot code is inlined three deep
(always_inline, -O2 -g): the inlined functions are frames of their own under
their caller in folded stacks (`_[i]`), the flame graph and pprof (checked
with `go tool pprof -traces`, which prints inline frames "(inline)");
--no-inline folds them away again, --srcline names their lines."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require
from sysutil import bpf_ready, parse_folded, run_profiler  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from lines_programs import build_c  # noqa: E402

CHAIN = ["work", "outer_round_[i]", "middle_step_[i]", "leaf_mix_[i]"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One recording (raw), reported in every format by the tests."""
    d = tmp_path_factory.mktemp("record-lines")
    exe = build_c(d, "inline_chain", ["-g"])
    raw = d / "out.json"
    run = run_profiler("record", "-q", "-o", str(raw), "--", str(exe), "2", timeout=120)
    assert run.returncode == 0, run.stderr
    return d, raw


def _report(raw: Path, out: Path, *flags: str) -> str:
    run = run_profiler("report", str(raw), "-o", str(out), *flags, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stderr


def _share(rows, wanted) -> float:
    total = sum(n for _f, n in rows)
    return sum(n for f, n in rows if wanted(f)) / total


@pytest.mark.root
def test_inlined_functions_are_frames_under_their_caller(bpf_ready, recorded):
    d, raw = recorded
    stderr = _report(raw, d / "out.folded")
    assert "warning" not in stderr, stderr
    rows = parse_folded((d / "out.folded").read_text())
    # leaf_mix is where the loop spends its time: most samples end in the chain
    def in_chain(frames):
        return any(frames[i:i + 4] == CHAIN for i in range(len(frames)))
    assert _share(rows, in_chain) > 0.5, rows
    for frames, _n in rows:  # an inline frame always sits under its caller
        for i, f in enumerate(frames):
            if f == "leaf_mix_[i]":
                assert frames[i - 1] == "middle_step_[i]", frames
            if f == "middle_step_[i]":
                assert frames[i - 1] == "outer_round_[i]", frames
            if f == "outer_round_[i]":
                assert frames[i - 1] == "work", frames


@pytest.mark.root
def test_no_inline_and_srcline(bpf_ready, recorded):
    d, raw = recorded
    _report(raw, d / "plain.folded", "--no-inline")
    rows = parse_folded((d / "plain.folded").read_text())
    assert not any(f.endswith("_[i]") for frames, _n in rows for f in frames)
    assert _share(rows, lambda frames: frames[-1] == "work") > 0.5
    _report(raw, d / "src.folded", "--srcline")
    rows = parse_folded((d / "src.folded").read_text())
    leaves = [frames[-1] for frames, _n in rows if frames[-1].startswith("leaf_mix (")]
    assert leaves and all(f.startswith("leaf_mix (inline_chain.c:") and f.endswith(")_[i]")
                          for f in leaves), leaves


@pytest.mark.root
def test_svg_has_inline_frames_with_their_source_in_the_tooltip(bpf_ready, recorded):
    d, raw = recorded
    _report(raw, d / "out.svg")
    text = (d / "out.svg").read_text()
    assert "<title>leaf_mix (" in text  # the frame, its name without _[i]
    assert "inline_chain.c:" in text  # its source, in the rect's own tooltip


@pytest.mark.root
def test_pprof_traces_show_inline_frames(bpf_ready, recorded):
    d, raw = recorded
    go = shutil.which("go")
    require(go is not None, "go (golang-go) is not installed")
    _report(raw, d / "out.pb.gz")
    done = subprocess.run([go, "tool", "pprof", "-symbolize=none", "-traces",
                           str(d / "out.pb.gz")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(d)})
    assert done.returncode == 0, done.stderr
    lines = [line[13:] for line in done.stdout.splitlines()]
    # -traces prints each stack leaf first: the chain reads innermost first
    want = ["leaf_mix (inline)", "middle_step (inline)", "outer_round (inline)", "work"]
    assert any(lines[i:i + 4] == want for i in range(len(lines))), done.stdout[:3000]
