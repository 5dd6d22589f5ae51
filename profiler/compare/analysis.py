"""Compare two profiles function by function and decide whether one regressed.

A function's share is the fraction of a profile's samples whose stack holds it
(inclusive, recursion counted once per stack) or ends in it (self). A change
counts as a regression only when it is both large (in percentage points) and
unlikely to be sampling noise (a two-proportion z-test on the sample counts).
"""
from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections import Counter
from typing import Iterable, Mapping

from flamegraph.folded import format_line, parse_folded, split_frames

SIGNIFICANCE = 0.01  # p below this: the change is unlikely to be noise
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_MAX_RENAME_PAIRS = 1_000_000


class Metric(enum.Enum):
    TOTAL = "total"  # inclusive: the function or anything it calls
    SELF = "self"  # the function's own code only


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompareOptions:
    metric: Metric = Metric.TOTAL
    normalize: bool = True  # shares of each profile's own total
    strip_hex: bool = False
    fail_on: float | None = None  # percentage points; None: never fail
    min_samples: int = 0  # ignore functions below this in both profiles
    top: int = 10


@dataclasses.dataclass(frozen=True)
class Profile:
    """Folded stacks as counts per stack (frames root first)."""

    label: str
    stacks: Mapping[tuple[str, ...], float]
    total: float
    ignored_lines: int = 0


@dataclasses.dataclass(frozen=True)
class Side:
    inclusive: float  # samples
    self: float
    inclusive_pct: float
    self_pct: float


@dataclasses.dataclass(frozen=True)
class FunctionChange:
    name: str
    before: Side
    after: Side
    delta_inclusive_pp: float
    delta_self_pp: float
    p_inclusive: float
    p_self: float
    renamed_from: str | None = None

    def delta(self, metric: Metric) -> float:
        return self.delta_inclusive_pp if metric is Metric.TOTAL else self.delta_self_pp

    def p_value(self, metric: Metric) -> float:
        return self.p_inclusive if metric is Metric.TOTAL else self.p_self


@dataclasses.dataclass(frozen=True)
class Comparison:
    baseline: Profile
    current: Profile
    options: CompareOptions
    functions: tuple[FunctionChange, ...]  # every function, by name
    regressions: tuple[FunctionChange, ...]  # significant growth, largest first
    improvements: tuple[FunctionChange, ...]  # significant shrink, largest first
    failed: tuple[FunctionChange, ...]  # regressions beyond --fail-on

    @property
    def verdict(self) -> str:
        return "fail" if self.failed else "pass"


def load_profile(label: str, lines: Iterable[str], strip_hex: bool = False) -> Profile:
    """Folded lines -> Profile; a differential line counts its second column."""
    folded = parse_folded(lines)
    stacks: Counter[tuple[str, ...]] = Counter()
    for entry in folded.entries:
        stack = _HEX.sub("0x...", entry.stack) if strip_hex else entry.stack
        stacks[tuple(split_frames(stack))] += entry.weight
    return Profile(label, dict(stacks), sum(stacks.values()), folded.ignored)


def function_counts(profile: Profile) -> tuple[Counter[str], Counter[str]]:
    """(inclusive, self) samples per function name."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, count in profile.stacks.items():
        for name in set(stack):  # recursion: once per stack
            inclusive[name] += count
        if stack:
            own[stack[-1]] += count
    return inclusive, own


def two_proportion_p(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value that x1/n1 and x2/n2 differ only by sampling noise."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0 if x1 / n1 == x2 / n2 else 0.0
    z = (x2 / n2 - x1 / n1) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def poisson_rate_p(x1: float, x2: float) -> float:
    """Two-sided p-value that counts x1 and x2 (same exposure) have one rate."""
    if x1 + x2 <= 0:
        return 1.0
    z = (x2 - x1) / math.sqrt(x1 + x2)
    return math.erfc(abs(z) / math.sqrt(2))


def renames(before: Profile, after: Profile) -> dict[str, str]:
    """new name -> old name, for functions that vanished and reappeared renamed.

    A rename leaves the call graph as it was: the new name has the same callers
    and callees as the old one had. Pairs are matched on that neighbourhood.
    """
    old_names = _neighbourhoods(before)
    new_names = _neighbourhoods(after)
    gone = {n: v for n, v in old_names.items() if n not in new_names}
    new = {n: v for n, v in new_names.items() if n not in old_names}
    pairs: dict[str, str] = {}
    if len(gone) * len(new) > _MAX_RENAME_PAIRS:
        return pairs  # a different program, not a rename: not worth the time
    for name, context in sorted(new.items()):
        best, best_score = None, 0.0
        for old, old_context in sorted(gone.items()):
            if old in pairs.values():
                continue
            union = context | old_context
            score = len(context & old_context) / len(union) if union else 0.0
            if score > best_score:
                best, best_score = old, score
        if best is not None and best_score >= 0.5:
            pairs[name] = best
    return pairs


def _neighbourhoods(profile: Profile) -> dict[str, frozenset[tuple[str, str]]]:
    """Per function: its callers ('<', name) and callees ('>', name)."""
    found: dict[str, set[tuple[str, str]]] = {}
    for stack in profile.stacks:
        for i, name in enumerate(stack):
            context = found.setdefault(name, set())
            context.add(("<", stack[i - 1] if i else ""))
            context.add((">", stack[i + 1] if i + 1 < len(stack) else ""))
    return {name: frozenset(c) for name, c in found.items()}


def compare(baseline: Profile, current: Profile, options: CompareOptions = CompareOptions()) -> Comparison:
    renamed = renames(baseline, current)
    inc_before, self_before = function_counts(baseline)
    inc_after, self_after = function_counts(current)
    for new, old in renamed.items():  # compare a renamed function with its old self
        inc_before[new] = inc_before.pop(old, 0)
        self_before[new] = self_before.pop(old, 0)
    n_before = baseline.total
    n_after = current.total if options.normalize else baseline.total

    changes = []
    for name in sorted(set(inc_before) | set(inc_after)):
        before = _side(inc_before[name], self_before[name], n_before)
        after = _side(inc_after[name], self_after[name], n_after)
        if max(before.inclusive, after.inclusive) < options.min_samples:
            continue
        if options.normalize:
            p_inc = two_proportion_p(before.inclusive, baseline.total, after.inclusive, current.total)
            p_self = two_proportion_p(before.self, baseline.total, after.self, current.total)
        else:
            p_inc = poisson_rate_p(before.inclusive, after.inclusive)
            p_self = poisson_rate_p(before.self, after.self)
        changes.append(FunctionChange(
            name, before, after,
            after.inclusive_pct - before.inclusive_pct, after.self_pct - before.self_pct,
            p_inc, p_self, renamed.get(name)))

    metric = options.metric
    significant = [c for c in changes if c.p_value(metric) < SIGNIFICANCE and c.delta(metric) != 0]
    regressions = sorted((c for c in significant if c.delta(metric) > 0),
                         key=lambda c: (-c.delta(metric), c.name))
    improvements = sorted((c for c in significant if c.delta(metric) < 0),
                          key=lambda c: (c.delta(metric), c.name))
    failed = ()
    if options.fail_on is not None:
        failed = tuple(c for c in regressions if c.delta(metric) > options.fail_on)
    return Comparison(baseline, current, options, tuple(changes), tuple(regressions),
                      tuple(improvements), failed)


def _side(inclusive: float, own: float, total: float) -> Side:
    scale = 100.0 / total if total > 0 else 0.0
    return Side(inclusive, own, inclusive * scale, own * scale)


def differential_lines(baseline: Profile, current: Profile, *, normalize: bool,
                       baseline_shape: bool = False) -> list[str]:
    """`stack before after` lines for a differential flame graph.

    Widths come from the second column: CURRENT's shape, or the baseline's with
    `baseline_shape` (drawn with --negate so red still means growth).
    """
    scale = current.total / baseline.total if normalize and baseline.total > 0 else 1.0
    lines = []
    for stack in sorted(set(baseline.stacks) | set(current.stacks)):
        before = baseline.stacks.get(stack, 0.0) * scale
        after = current.stacks.get(stack, 0.0)
        first, second = (after, before) if baseline_shape else (before, after)
        # Six decimals: scaled counts read back exactly enough, and stay short.
        lines.append(format_line(stack, round(first, 6), round(second, 6)))
    return lines
