"""Two profiles -> differential folded stacks, as FlameGraph's difffolded.pl.

Each output line is `stack COUNT_BEFORE COUNT_AFTER`, one per distinct stack
over both inputs (0 where a side lacks it), ready for flamegraph.pl or
`flamegraph`. Pure functions only: the CLI reads the files.

Where difffolded.pl's behaviour is deliberate it is reproduced (how a line is
split, the order of the normalizing arithmetic, truncation); where it is an
accident (hash order, invalid lines merged into an empty stack, dying on a
zero total) it is not.
"""
from __future__ import annotations

import math
import re

from flamegraph.folded import Entry, Folded, format_count

_HEX = re.compile(r"0x[0-9a-fA-F]+")
_STRIPPED_HEX = "0x..."
# Perl prints integral sums as integers while they fit an IV; format_count
# switches to float notation at 1e15, so widen the integer range here.
_PERL_IV_LIMIT = 2.0**63


def stack_and_count(entry: Entry) -> tuple[str, float]:
    """difffolded.pl's reading of a line: the LAST count, and the rest is the stack.

    It has no notion of differential input, so for `a;b 1 2` the stack is
    `a;b 1`. Keeping that (rather than the parser's split into two counts)
    means a frame whose name ends in ` <digits>` survives a diff.
    """
    if entry.count2 is None:
        return entry.stack, entry.count
    last = entry.count_texts()[-1]
    return entry.line[: len(entry.line) - len(last) - 1], entry.count2


def strip_addresses(stack: str) -> str:
    """`0x7f3a...` -> `0x...`, so addresses that move between runs still merge."""
    return _HEX.sub(_STRIPPED_HEX, stack)


def sum_by_stack(folded: Folded, *, strip: bool) -> tuple[dict[str, float], float]:
    """Counts summed per stack, and the grand total.

    Sums run in line order, as Perl's `+=` does, so fractional counts round
    the same way.
    """
    sums: dict[str, float] = {}
    total = 0.0
    for entry in folded.entries:
        stack, count = stack_and_count(entry)
        if strip:
            stack = strip_addresses(stack)
        sums[stack] = sums.get(stack, 0.0) + count
        total += count
    return sums, total


def normalized(count: float, before_total: float, after_total: float) -> float:
    """Scale a BEFORE count to AFTER's total, as difffolded.pl -n does.

    Multiply first, then divide, then truncate toward zero (Perl's int()):
    the order matters, e.g. 49 * 1 / 49 is 1 but 49 * (1 / 49) truncates to 0.
    A zero BEFORE total means every BEFORE count is 0: nothing to scale (Perl
    dies on the division).
    """
    if before_total == after_total or before_total == 0:
        return count
    scaled = count * after_total / before_total
    return float(math.trunc(scaled)) if math.isfinite(scaled) else scaled


def format_diff_count(value: float) -> str:
    """A count as Perl prints it for integral values: no `.0`, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < _PERL_IV_LIMIT:
        return str(int(value))
    return format_count(value)


def diff_folded(before: Folded, after: Folded, *, normalize: bool, strip_hex: bool) -> list[str]:
    """The differential lines for BEFORE -> AFTER, sorted.

    Sorting whole lines (code-point order, which is UTF-8 byte order) makes
    the output byte-reproducible and equal to `difffolded.pl ... | LC_ALL=C sort`.
    """
    before_sums, before_total = sum_by_stack(before, strip=strip_hex)
    after_sums, after_total = sum_by_stack(after, strip=strip_hex)
    lines = []
    for stack in before_sums.keys() | after_sums.keys():
        count1 = before_sums.get(stack, 0.0)
        if normalize:
            count1 = normalized(count1, before_total, after_total)
        count2 = after_sums.get(stack, 0.0)
        lines.append(f"{stack} {format_diff_count(count1)} {format_diff_count(count2)}")
    lines.sort()
    return lines
