"""What the BPF benchmarks share: bpf_stats switched on for the run (and
restored), a temporary directory, and the environment that points BCC's
own tools at the kernel headers the profiler finds."""
from __future__ import annotations

import contextlib
import os
import pathlib
import sys
import tempfile
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
