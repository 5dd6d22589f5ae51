"""dwarf mode: the records the program sends through the `copies` ring."""
from __future__ import annotations

import ctypes
import dataclasses
import struct

# struct copy_head: pid, tid, kernel_hash, ip, sp, fp, lr, size, flags, comm
COPY_HEAD = struct.Struct("=IIQQQQQII16s")
COPY_GEN1, COPY_USER = 1, 2


@dataclasses.dataclass(frozen=True)
class StackCopy:
    """One dwarf-mode sample: the user registers and the copied stack."""

    pid: int
    tid: int
    comm: str
    ip: int
    sp: int
    fp: int
    lr: int
    stack: bytes  # the bytes at [sp, sp + len(stack))
    has_user: bool  # False: no user context (a kernel thread)


def decode(address: int, size: int) -> tuple[StackCopy, int, int] | None:
    """(the copy, its kernel stack key, that key's generation) of a record
    in place in the ring; None for a record too short to hold a head."""
    head = ctypes.string_at(address, min(size, COPY_HEAD.size))
    if len(head) < COPY_HEAD.size:
        return None
    pid, tid, kernel, ip, sp, fp, lr, n, flags, comm = COPY_HEAD.unpack(head)
    n = max(0, min(n, size - COPY_HEAD.size))
    stack = ctypes.string_at(address + COPY_HEAD.size, n) if n else b""
    name = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
    return (StackCopy(pid, tid, name, ip, sp, fp, lr, stack, bool(flags & COPY_USER)),
            kernel, flags & COPY_GEN1)
