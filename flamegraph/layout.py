"""Place merged frames on the canvas with flamegraph.pl's geometry.

Pure arithmetic: no colors, no SVG. Every number here is one flamegraph.pl
computes the same way, so a frame lands on the same pixel in both.
"""
from __future__ import annotations

import dataclasses

from flamegraph.color import strip_annotation
from flamegraph.merge import Frame, Merged
from flamegraph.options import MinWidth, Options

XPAD = 10  # left and right margin
FRAMEPAD = 1  # vertical gap between rows


@dataclasses.dataclass(frozen=True)
class Canvas:
    width: int
    height: float
    top_pad: float  # title (and subtitle) area
    bottom_pad: float  # details line and buttons
    frame_height: float


@dataclasses.dataclass(frozen=True, slots=True)
class Box:
    frame: Frame
    x1: float
    x2: float
    y1: float
    y2: float
    label: str  # the text drawn inside the box, fitted to its width ("" if none)


def time_scale(options: Options, total: float) -> float:
    """Pixels per count unit, given the drawn total."""
    return (options.width - 2 * XPAD) / total


def drawn_total(options: Options, total: float) -> float:
    """--total widens the scale; a smaller one is ignored, as flamegraph.pl does."""
    if options.total and options.total > total:
        return options.total
    return total


def min_width_in_counts(minwidth: MinWidth, options: Options, total: float) -> float:
    if minwidth.percent:
        return total * minwidth.value / 100
    return minwidth.value / time_scale(options, total)


def canvas_for(options: Options, max_depth: int) -> Canvas:
    top = options.fontsize * 3 + (options.fontsize * 2 if options.subtitle else 0)
    bottom = options.fontsize * 2 + 10
    height = (max_depth + 1) * options.height + top + bottom
    return Canvas(options.width, height, top, bottom, options.height)


def fit_label(name: str, pixels: float, options: Options) -> str:
    """The name cut to the box, with '..' when cut; "" when fewer than 3 chars fit."""
    chars = int(pixels / (options.fontsize * options.fontwidth))
    if chars < 3:
        return ""
    name = strip_annotation(name)
    if chars < len(name):
        return name[: chars - 2] + ".."
    return name


def layout(merged: Merged, options: Options, total: float) -> tuple[Canvas, list[Box]]:
    canvas = canvas_for(options, merged.max_depth)
    scale = time_scale(options, total)
    boxes = []
    for frame in merged.frames:
        x1 = XPAD + frame.start * scale
        x2 = XPAD + frame.end * scale
        if options.inverted:
            y1 = canvas.top_pad + frame.depth * canvas.frame_height
            y2 = canvas.top_pad + (frame.depth + 1) * canvas.frame_height - FRAMEPAD
        else:
            y1 = canvas.height - canvas.bottom_pad - (frame.depth + 1) * canvas.frame_height + FRAMEPAD
            y2 = canvas.height - canvas.bottom_pad - frame.depth * canvas.frame_height
        boxes.append(Box(frame, x1, x2, y1, y2, fit_label(frame.name, x2 - x1, options)))
    return canvas, boxes
