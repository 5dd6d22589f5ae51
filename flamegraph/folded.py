"""Folded stacks: `frame;frame;frame COUNT` or, differential, `... COUNT1 COUNT2`.

The grammar is flamegraph.pl's: the count is the last whitespace-separated
token and must read `\\d+(\\.\\d*)?`; a second such token before it makes the
line differential; everything before is the stack, split on ';' with trailing
empty frames dropped. Lines that do not parse are counted, never fatal.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterable, Iterator

# Perl's \s and \d without Unicode semantics: flamegraph.pl reads bytes.
_TAIL = re.compile(r"[\t\n\v\f\r ](\d+(?:\.\d*)?)\Z", re.ASCII)
_REPORTED_LINE_NUMBERS = 5
_INF = float("inf")


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One input line. `count2` is set for differential lines.

    The line's text is kept whole because flamegraph.pl sorts whole lines
    (count included), and slicing the stack out on demand keeps one copy of a
    large profile in memory instead of two.
    """

    line: str
    stack_end: int
    count: float
    count2: float | None = None

    @property
    def stack(self) -> str:
        return self.line[: self.stack_end]

    @property
    def weight(self) -> float:
        """The width the line adds: the second count for differential lines."""
        return self.count if self.count2 is None else self.count2

    def count_texts(self) -> list[str]:
        """The counts as written (flamegraph.pl re-emits them under --reverse)."""
        return self.line[self.stack_end + 1 :].split()


@dataclasses.dataclass(frozen=True)
class Folded:
    entries: tuple[Entry, ...]
    ignored: int = 0
    ignored_line_numbers: tuple[int, ...] = ()  # the first few, 1-based

    @property
    def differential(self) -> bool:
        return any(e.count2 is not None for e in self.entries)


_NUMBER = re.compile(r"\d+(?:\.\d*)?\Z", re.ASCII)


def _count_at_end(text: str, end: int) -> tuple[int, float] | None:
    """(index of the separating whitespace, count) for text[:end], or None.

    The fast path splits at the last space; anything unusual (tabs, other
    whitespace, no space) falls back to the regular expression.
    """
    space = text.rfind(" ", 0, end)
    if space >= 0:
        token = text[space + 1 : end]
        if token.isascii() and token.isdigit():
            return space, float(token)
        if _NUMBER.match(token):
            return space, float(token)
        if not any(c in token for c in "\t\n\v\f\r"):
            return None
    match = _TAIL.search(text, 0, end)
    if match is None:
        return None
    return match.start(), float(match.group(1))


def parse_line(line: str) -> Entry | None:
    """Parse one line (line ending already removed); None if it is invalid."""
    last = _count_at_end(line, len(line))
    if last is None or last[1] == _INF:  # 400 digits: no float holds that count
        return None
    end, count = last
    first = _count_at_end(line, end)
    if first is None:
        return Entry(line, end, count)
    if first[1] == _INF:
        return None
    return Entry(line, first[0], first[1], count)


def strip_line_ending(line: str) -> str:
    """Remove one LF, CRLF or CR line end (CRLF files are accepted)."""
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def parse_folded(lines: Iterable[str]) -> Folded:
    """Parse folded lines; blank and malformed lines are counted as ignored."""
    entries: list[Entry] = []
    ignored = 0
    first_bad: list[int] = []
    for number, raw in enumerate(lines, 1):
        entry = parse_line(strip_line_ending(raw))
        if entry is None:
            ignored += 1
            if len(first_bad) < _REPORTED_LINE_NUMBERS:
                first_bad.append(number)
            continue
        entries.append(entry)
    return Folded(tuple(entries), ignored, tuple(first_bad))


def describe_ignored(count: int, line_numbers: tuple[int, ...]) -> str:
    """'ignored N line(s) with invalid format (line 3, 7, ...)': said once per input."""
    where = ", ".join(str(n) for n in line_numbers)
    more = ", ..." if count > len(line_numbers) else ""
    return f"ignored {count} line(s) with invalid format (line {where}{more})"


def split_frames(stack: str) -> list[str]:
    """Split a stack as Perl's `split ";"`: trailing empty frames are dropped."""
    frames = stack.split(";")
    while frames and not frames[-1]:
        frames.pop()
    return frames


def format_count(value: float) -> str:
    """A count as folded files write it: integral values without '.0' or exponent."""
    if not math.isfinite(value):
        return repr(value)
    if float(value).is_integer():
        return str(int(value))
    # The folded grammar has no exponent: 1e-06 must read 0.000001. (decimal
    # is imported here: only fractional counts need it, every start-up would pay.)
    import decimal
    return format(decimal.Decimal(repr(float(value))), "f")


def format_line(frames: Iterable[str], count: float, count2: float | None = None) -> str:
    """Write one folded line; ';' inside a frame name becomes ':'."""
    stack = ";".join(f.replace(";", ":") for f in frames)
    if count2 is None:
        return f"{stack} {format_count(count)}"
    return f"{stack} {format_count(count)} {format_count(count2)}"


def decode_lines(data: bytes) -> Iterator[str]:
    """Bytes to lines: UTF-8 with replacement, never an exception."""
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    # splitlines() would also break on \x0b, \x1c, U+2028...: names may hold those.
    return iter(text.split("\n")) if text else iter(())
