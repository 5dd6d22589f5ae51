"""Where a frameless leaf keeps its return address, from its CFI row.

A frame-pointer walk starts at the sampled pc and then follows the frame
pointer. When the sampled function has not set up a frame (a small leaf
function, or a prologue or epilogue), the frame pointer is still the
caller's, so the walk's next return address is the caller's own: the
caller is skipped. The row in force at the sampled pc tells: a CFA kept on
the stack pointer means no frame is set up, and the return address lies at
a fixed distance from sp. A CFA kept on the frame pointer means the walk is
right, and nothing may be added.
"""
from __future__ import annotations

from profiler.unwind import cfi
from profiler.unwind.dwarf import X86_64, Arch


def return_address_offset(row: cfi.Row | None, arch: Arch = X86_64) -> int:
    """k + 1 when the return address is at sp + k with no frame set up;
    0 when the frame is set up, or nothing can be said."""
    if row is None or row.cfa_expr or row.signal_frame or row.cfa_reg != arch.sp:
        return 0
    ra = dict(row.regs).get(row.ra_column)
    if ra is None or ra.kind != cfi.OFFSET:
        return 0
    offset = row.cfa_offset + ra.value
    if offset < 0 or offset % arch.word:
        return 0
    return offset + 1
