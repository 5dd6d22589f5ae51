"""Each distinct stack's key for the run.

In the kernel's count keys, bit 63 marks a bucket id of the count's
generation, and a clear bit 63 a content hash. Bucket ids are reused once a
generation is emptied, and one stack may be stored either way, so user
space replaces both by a key of its own for the run: bit 63 and a serial
number for each distinct stack. Stacks are kept packed (8 bytes an
address): a tuple of ints costs five times as much.

A run holds every distinct stack it saw, up to a limit (--max-stacks): past
it, a stack not seen before gets the one key OVER_LIMIT, whose stack is the
single marker address OVER_STACK_LIMIT. Its samples stay counted under their
process, and the summary reports them; memory stops growing there.
"""
from __future__ import annotations

import array
import struct

from profiler.model.raw import OVER_STACK_LIMIT

STACK_ID_TAG = 1 << 63
MISSING_STACK = (1 << 64) - 1  # a bucket that could not be read: no frames under this key
OVER_LIMIT = (1 << 64) - 2  # every stack first seen once the run held its limit
_OVER_LIMIT_PACKED = struct.pack("=Q", OVER_STACK_LIMIT)


def pack(ips) -> bytes:
    return array.array("Q", ips).tobytes()


def unpack_stack(packed: bytes) -> tuple[int, ...]:
    """A stack as drains hand it over (packed) -> addresses, leaf first."""
    return struct.unpack(f"={len(packed) // 8}Q", packed)


def from_bucket(raw: bytes) -> tuple[int, ...]:
    """The addresses of a stack-trace map bucket (zero-padded after the last)."""
    ips = struct.unpack(f"={len(raw) // 8}Q", raw)
    return ips[:ips.index(0)] if 0 in ips else ips


class StackKeys:
    def __init__(self, limit: int = 1 << 62) -> None:
        self.limit = limit
        self._keys: dict[bytes, int] = {}
        self._stacks: dict[int, bytes] = {}  # the same stacks by key (the run's stack store)

    @property
    def full(self) -> bool:
        return len(self._keys) >= self.limit

    def intern(self, ips) -> int:
        """The stack's key for the run, the same however the kernel stored it;
        OVER_LIMIT for a new stack once the run holds its limit."""
        packed = pack(ips)
        key = self._keys.get(packed)
        if key is None:
            if len(self._keys) >= self.limit:
                return self.over_limit()
            key = self._keys[packed] = STACK_ID_TAG | (len(self._keys) + 1)
            self._stacks[key] = packed
        return key

    def over_limit(self) -> int:
        """The key of every stack not kept for the limit (its marker stack
        stored with the first)."""
        self._stacks[OVER_LIMIT] = _OVER_LIMIT_PACKED
        return OVER_LIMIT

    def stack(self, key: int) -> tuple[int, ...]:
        """The addresses of an interned key; () for any other."""
        packed = self._stacks.get(key)
        return unpack_stack(packed) if packed else ()

    def stacks(self) -> dict[int, tuple[int, ...]]:
        """Every stack of the run by key, addresses leaf first."""
        return {key: unpack_stack(packed) for key, packed in self._stacks.items()}
