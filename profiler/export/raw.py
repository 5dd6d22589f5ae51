"""The raw profile as versioned JSON: what `profiler report` symbolizes later."""
from __future__ import annotations

from profiler.model.raw import RawProfile


def write_raw(raw: RawProfile) -> bytes:
    return (raw.to_json() + "\n").encode()
