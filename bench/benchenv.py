"""What the BPF benchmarks share: bpf_stats switched on for the run (and
restored), a temporary directory, the environment that points BCC's own
tools at the kernel headers the profiler finds, and a process's resident
memory read while it runs."""
from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import tempfile
import time
from typing import Iterator

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from profiler.record.kheaders import kernel_source, plan_headers  # noqa: E402

STATS = pathlib.Path("/proc/sys/kernel/bpf_stats_enabled")


@contextlib.contextmanager
def bench_env() -> Iterator[tuple[pathlib.Path, dict]]:
    """(a temporary directory, the environment for BCC's tools)."""
    before = STATS.read_text().strip()
    STATS.write_text("1")
    try:
        with tempfile.TemporaryDirectory() as tmpname, kernel_source(plan_headers()) as src:
            env = dict(os.environ)
            if src:
                env["BCC_KERNEL_SOURCE"] = src
            yield pathlib.Path(tmpname), env
    finally:
        STATS.write_text(before)


def vm_rss_kb(pid: int) -> int | None:
    """VmRSS of a live process, in KB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), None)
    except (OSError, ValueError):
        return None


def watch_rss(proc, every: float, most: int | None = None):
    """Read VmRSS of `proc` (a Popen) every `every` seconds (at most `most`
    times) until it exits: ([(seconds, KB)], exit code, its rusage)."""
    t0 = time.monotonic()
    series: list[tuple[float, int]] = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return series, proc.returncode, usage
        now = time.monotonic()
        if now - t0 >= every * (len(series) + 1) and (most is None or len(series) < most):
            kb = vm_rss_kb(proc.pid)
            if kb is not None:
                series.append((now - t0, kb))
        time.sleep(0.05)
