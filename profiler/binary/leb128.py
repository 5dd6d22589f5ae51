"""LEB128 numbers (DWARF's variable-length integers), for every reader of
DWARF and CFI bytes: never read past `end`, and never more than 11 bytes
(no real 64-bit value is longer), so that a run of 0xff bytes in a hostile
file cannot grow a bignum byte after byte.
"""
from __future__ import annotations


class Malformed(ValueError):
    """Bytes that do not hold what their format says (LEB128, CFI, DWARF)."""


def uleb(data: bytes, pos: int, end: int = -1) -> tuple[int, int]:
    """(value, position after it) of the unsigned LEB128 at data[pos]; `end`
    bounds it (-1: the end of `data`)."""
    if end < 0:
        end = len(data)
    if pos < end and data[pos] < 0x80:  # most are one byte
        return data[pos], pos + 1
    value = shift = 0
    while True:
        if pos >= end or shift > 70:
            raise Malformed("a LEB128 number past its bytes or longer than 11 bytes")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def sleb(data: bytes, pos: int, end: int = -1) -> tuple[int, int]:
    """(value, position after it) of the signed LEB128 at data[pos]."""
    start = pos
    value, pos = uleb(data, pos, end)
    shift = 7 * (pos - start)
    return (value - (1 << shift) if data[pos - 1] & 0x40 else value), pos
