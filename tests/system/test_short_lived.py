"""Processes that live a few milliseconds, on a loaded machine: a build's
assembler, a script's short commands. Reading /proc/PID/maps races them (a
run can end before the profiler reads it); the kernel's own records of
their mappings (PERF_RECORD_MMAP2, as perf reads them) do not."""
from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from sysutil import (CFLAGS, HERE, bpf_ready, no_leftovers, parse_folded,  # noqa: F401
                     run_profiler)

pytestmark = pytest.mark.root


@contextlib.contextmanager
def busy_cpus(n: int):
    """n busy loops, so that the profiler competes for the CPUs."""
    loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in loops:
            p.kill()
            p.wait()


@pytest.mark.parametrize("mode", ["dwarf", "fp"])
def test_commands_of_a_few_milliseconds_are_named_under_load(bpf_ready, tmp_path, no_leftovers,
                                                             mode):
    exe = str(tmp_path / "fp_chain")
    subprocess.run(["gcc", *CFLAGS, "-o", exe, os.path.join(HERE, "workloads", "fp_chain.c")],
                   check=True)
    out = tmp_path / "out.folded"
    script = f"i=0; while [ $i -lt 40 ]; do {exe} 0.01; i=$((i+1)); done"
    with busy_cpus(2):
        run = run_profiler("record", "--call-graph", mode, "-F", "999", "-o", str(out), "--",
                           "/bin/sh", "-c", script, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [(f, n) for f, n in parse_folded(out.read_text()) if f[0] == "fp_chain"]
    total = sum(n for _, n in rows)
    chain = sum(n for f, n in rows if "chain_leaf" in f and "main" in f)

    def bad(x):
        return x.startswith(("[unmapped]", "[no maps]")) or "+0x" in x

    # fp: only the sampled function, whose address is exact; a frame-pointer
    # walk through ld.so (built without them) reads garbage callers by itself.
    unnamed = [(f, n) for f, n in rows
               if (any(bad(x) for x in f) if mode == "dwarf" else
                   bad(([x for x in f[1:] if not x.endswith("_[k]")] or ["-"])[-1]))]
    print(f"{mode}: {total} samples of 40 runs of 10 ms, {chain} in the chain, "
          f"{sum(n for _, n in unnamed)} with unnamed frames")
    assert total > 100 and chain > total / 2, run.stderr
    # (ld.so's own start-up is a tenth of a 10 ms life: named too)
    assert sum(n for _, n in unnamed) <= 0.01 * total, unnamed[:5]
