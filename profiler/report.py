"""Saved raw profile -> folded lines (what `profiler compare` uses)."""
from __future__ import annotations

from profiler.export.folded import fold
from profiler.model.raw import RawProfile
from profiler.options import Grouping
from profiler.symbolize.build import build_profile


def folded_lines_from_raw(path: str, data: bytes, grouping: Grouping = Grouping.COMM) -> list[str]:
    """Symbolize and fold a raw profile read from `path` (its bytes in `data`).
    Files are found by the paths the memory maps named when recording."""
    profile = RawProfile.from_json(data.decode("utf-8", "replace"))
    return fold(build_profile(profile), grouping)
