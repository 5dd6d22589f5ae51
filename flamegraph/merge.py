"""Merge stacks into frames, as flamegraph.pl's flow() does.

Stacks are visited in flamegraph.pl's order (whole lines sorted as strings, or
input order for a flame chart); a frame stays open while consecutive stacks
share it, so its width is the sum of their counts. Frames narrower than the
minimum width are dropped as they close, which keeps memory proportional to
what is drawn rather than to the input.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from flamegraph.folded import Entry, split_frames
from flamegraph.options import Order


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """A merged frame: the span [start, end) in count units at `depth` (root 0)."""

    name: str
    depth: int
    start: float
    end: float
    delta: float | None  # differential: the change in the frame's own count

    @property
    def width(self) -> float:
        return self.end - self.start


@dataclasses.dataclass(frozen=True)
class Merged:
    frames: tuple[Frame, ...]  # sorted by (depth, start); the root ("", depth 0) first
    total: float  # the sum of all line weights, in flamegraph.pl's order
    max_delta: float  # the largest absolute line delta (at least 1, as flamegraph.pl)
    max_depth: int
    differential: bool


def reversed_entry(entry: Entry) -> Entry:
    """--reverse: the stack leaf-first, the line re-written as flamegraph.pl does."""
    stack = ";".join(reversed(split_frames(entry.stack)))
    line = " ".join([stack, *entry.count_texts()])
    return Entry(line, len(stack), entry.count, entry.count2)


def chain_annotated(stack: str) -> str:
    """--colors chain: frames after each `--` separator are wakers (`_[w]`).

    flamegraph.pl appends a `--` frame to every stack in this mode; so do we.
    """
    parts = stack.split(";--;")
    wakers = [part.replace(";", "_[w];") + "_[w]" for part in parts[1:]]
    return parts[0] + ";--;" + ";--;".join(wakers)


def ordered(entries: Sequence[Entry], order: Order, reverse: bool) -> list[Entry]:
    if reverse:
        entries = [reversed_entry(e) for e in entries]
    if order is Order.TIME:
        return list(entries)
    # Whole lines, as flamegraph.pl's `sort @Data`: code point order equals
    # its byte order for UTF-8 text.
    return sorted(entries, key=lambda e: e.line)


def total_of(entries: Sequence[Entry]) -> float:
    total = 0.0
    for entry in entries:  # summed in drawing order so float rounding matches
        total += entry.weight
    return total


def merge(entries: Sequence[Entry], min_width: float, *, chain: bool = False) -> Merged:
    """Merge already-ordered entries; keep frames at least `min_width` wide.

    All frames a line opens start at the same time, so open frames are held as
    runs of depths sharing a start: a run too narrow to draw is dropped whole
    when it closes, without touching its frames one by one.
    """
    kept: list[Frame] = []
    names: list[str] = []  # frames of the previous stack; [0] is the root ""
    # Open runs, outermost first: [first depth, start, leaf depth, leaf delta];
    # leaf delta is None for a non-differential line.
    runs: list[list] = []
    time = 0.0
    max_delta = 1.0
    differential = False

    def emit(run: list, first: int, end: int, now: float) -> None:
        _, start, leaf, leaf_delta = run
        if now - start < min_width:
            return
        zero = None if leaf_delta is None else 0.0
        for depth in range(first, end):
            delta = leaf_delta if depth == leaf else zero
            kept.append(Frame(names[depth], depth, start, now, delta))

    def close_from(depth: int, now: float) -> None:
        end = len(names)
        while runs and runs[-1][0] >= depth:
            run = runs.pop()
            emit(run, run[0], end, now)
            end = run[0]
        if runs and end > depth:  # the outer run loses its deeper frames
            emit(runs[-1], depth, end, now)

    for entry in entries:
        stack = entry.stack
        if chain:
            stack = chain_annotated(stack)
        frames = [""]
        frames += split_frames(stack)
        delta = None
        if entry.count2 is not None:
            differential = True
            delta = entry.count2 - entry.count
            if abs(delta) > max_delta:
                max_delta = abs(delta)

        same = 0
        limit = min(len(frames), len(names))
        while same < limit and frames[same] == names[same]:
            same += 1
        if same < len(names):
            close_from(same, time)
        if same < len(frames):
            # Only a newly opened leaf takes the line's delta (flamegraph.pl).
            runs.append([same, time, len(frames) - 1, delta])
        names = frames
        time += entry.weight

    close_from(0, time)
    kept.sort(key=lambda f: (f.depth, f.start))
    max_depth = max((f.depth for f in kept), default=0)
    return Merged(tuple(kept), time, max_delta, max_depth, differential)
