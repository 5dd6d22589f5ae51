"""The raw profile as versioned JSON: what `profiler report` symbolizes later."""
from __future__ import annotations

from profiler.model.raw import RawProfile

NAME = "raw"
EXTENSIONS = (".json",)
NEEDS_RAW = True  # written from what the profile was built from, not from the model


def write_raw(raw: RawProfile) -> bytes:
    return (raw.to_json() + "\n").encode()
