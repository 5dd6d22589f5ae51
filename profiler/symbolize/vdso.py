"""A process's vDSO image, read from its memory while it runs.

The kernel maps the same image into every process of one ABI, but a 32-bit
or x32 process gets another one, so each process's own is read (a few KB,
deduplicated by the caller).
"""
from __future__ import annotations

from profiler.model.maps import MapEntry

MAX_VDSO = 1 << 20


def read_vdso(pid: int, entry: MapEntry) -> bytes | None:
    """The bytes of the process's [vdso] mapping `entry`."""
    if not 0 < entry.end - entry.start <= MAX_VDSO:
        return None
    try:
        with open(f"/proc/{pid}/mem", "rb") as mem:
            mem.seek(entry.start)
            return mem.read(entry.end - entry.start) or None
    except (OSError, ValueError, OverflowError):
        return None
