"""Symbolized samples -> canonical folded stacks.

One line per distinct stack, sorted: `comm;user_root;...;user_leaf;
kernel_outer_[k];...;kernel_leaf_[k] COUNT`. The first frame is the process
name, `comm-PID` per process or `comm-PID/TID` per thread, spaces made
'_' (as stackcollapse-perf writes them). ';' inside a name becomes ':'.
"""
from __future__ import annotations

from typing import Iterable

from profiler.options import Grouping
from profiler.symbolize.symbolizer import SymbolizedSample

KERNEL_SUFFIX = "_[k]"


def clean(name: str) -> str:
    """A frame name safe inside a folded line."""
    return name.replace(";", ":").replace("\n", " ").replace("\r", " ") or "[empty]"


def process_frame(sample: SymbolizedSample, grouping: Grouping) -> str:
    comm = (sample.comm or "[unknown comm]").replace(" ", "_")
    if grouping is Grouping.PROCESS:
        return f"{comm}-{sample.pid}"
    if grouping is Grouping.THREAD:
        return f"{comm}-{sample.pid}/{sample.tid}"
    return comm


def fold(samples: Iterable[SymbolizedSample], grouping: Grouping = Grouping.COMM) -> list[str]:
    totals: dict[str, int] = {}
    for s in samples:
        frames = [process_frame(s, grouping), *s.user, *(n + KERNEL_SUFFIX for n in s.kernel)]
        stack = ";".join(clean(f) for f in frames)
        totals[stack] = totals.get(stack, 0) + s.count
    return [f"{stack} {count}" for stack, count in sorted(totals.items())]
