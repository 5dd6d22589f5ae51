"""fp mode: put back the caller a frame-pointer walk skipped.

The program reads the word where a frameless leaf keeps its return address
(profile.bpf.c, FP_FIXUP). Each (process, leaf pc) is judged once from its
CFI (`judge`: k + 1 when the return address is at sp + k with no frame set
up, else 0), the judgement is written to the program's `leaf_rules` array,
and a stack gets the word as the leaf's caller only where the judgement
says that word is the return address.
"""
from __future__ import annotations

import contextlib
import struct
from typing import Callable

_U32 = struct.Struct("=I")
_LEAF_RULE = struct.Struct("=QII")  # struct leaf_rule

Judge = Callable[[int, int], int]


def leaf_slot(pid: int, ip: int, slots: int) -> int:
    """The slot of leaf_rules a (process, pc) pair is judged in: the
    program's leaf_slot(), to the bit."""
    h = ((ip ^ (pid << 40)) * 0x9E3779B97F4A7C15) & (2 ** 64 - 1)
    return (h >> 40) & (slots - 1)


class LeafCallers:
    def __init__(self, judge: Judge, rules_map) -> None:
        self._judge = judge
        self._map = rules_map
        self._judged: dict[tuple[int, int], int] = {}

    def stack(self, pid: int, ips: tuple[int, ...], word: int,
              read_from: int) -> tuple[int, ...] | None:
        """The stack with the leaf's caller put back after it, when the
        leaf's judgement says the word read (from sp + read_from - 1) is its
        return address; None when nothing is to be added."""
        if not ips:
            return None
        judged = self._judged.get((pid, ips[0]))
        if judged is None:
            try:
                judged = self._judge(pid, ips[0])
            except Exception:  # a judge that fails judges nothing: no frame is added
                judged = 0
            self._judged[(pid, ips[0])] = judged
            with contextlib.suppress(OSError):  # refused: later samples read sp still
                self._map.update(_U32.pack(leaf_slot(pid, ips[0], self._map.max_entries)),
                                 _LEAF_RULE.pack(ips[0], pid, judged))
        if judged != read_from or (len(ips) > 1 and ips[1] == word):
            return None
        return (ips[0], word, *ips[1:])
