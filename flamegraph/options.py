"""Rendering options: one frozen dataclass, defaults in one place.

The CLI only translates argv into `Options`; library code never sees argparse.
Names and defaults follow flamegraph.pl so that its users find what they know.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Mapping


class ColorMode(enum.Enum):
    """How a frame's name picks its color within the palette."""

    NAME = "name"  # flamegraph.pl's default: drand48 seeded by the name's byte sum
    HASH = "hash"  # --hash: flamegraph.pl's namehash (early characters weigh most)
    RANDOM = "random"  # --random: a fresh random color per frame


class Order(enum.Enum):
    """How stacks are laid out along x."""

    MERGED = "merged"  # flame graph: stacks sorted, equal prefixes merged
    TIME = "time"  # --flamechart: input order, only adjacent stacks merged


PALETTES = (
    "hot", "mem", "io", "wakeup", "chain", "java", "js", "perl",
    "red", "green", "blue", "aqua", "yellow", "purple", "orange",
)
BGCOLORS = ("yellow", "blue", "green", "grey")


@dataclasses.dataclass(frozen=True)
class MinWidth:
    """--minwidth: pixels, or a percentage of the total when `percent`."""

    value: float = 0.1
    percent: bool = False

    @classmethod
    def parse(cls, text: str) -> "MinWidth":
        """'0.5' -> 0.5 px, '2%' -> 2 % of the total; ValueError otherwise."""
        text = text.strip()
        percent = text.endswith("%")
        number = text[:-1] if percent else text
        value = float(number)  # ValueError for garbage, as intended
        if not value >= 0 or value == float("inf"):
            raise ValueError(text)
        return cls(value, percent)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Options:
    title: str | None = None  # None: "Flame Graph", "Icicle Graph" or "Flame Chart"
    subtitle: str = ""
    width: int = 1200  # image width, pixels
    height: int = 16  # frame height, pixels
    minwidth: MinWidth = MinWidth()
    fonttype: str = "Verdana"
    fontsize: float = 12
    fontwidth: float = 0.59  # average glyph width relative to fontsize
    countname: str = "samples"
    nametype: str = "Function:"
    colors: str = "hot"
    bgcolors: str | None = None  # None: chosen from the palette, as flamegraph.pl
    color_mode: ColorMode = ColorMode.NAME
    # --cp: colors already assigned (palette.map); new names are added to the result.
    palette_map: Mapping[str, str] | None = None
    reverse: bool = False  # merge from the leaf end
    inverted: bool = False  # icicle: root at the top
    order: Order = Order.MERGED
    negate: bool = False  # swap the differential hues
    factor: float = 1.0  # scale counts in titles
    total: float | None = None  # override the total (when larger than the input's)
    # --nameattr: function name -> extra attributes (title, href, target, class, id).
    nameattr: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    # frame name -> where its code is ("file.c:12"), shown in its tooltip
    # only: a program without debug info has none, and its SVG is unchanged.
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notes: str = ""
    encoding: str | None = None  # only named in the XML declaration, as flamegraph.pl
    searchcolor: str = "rgb(230,0,230)"
    # With no valid input: None draws flamegraph.pl's "no valid input" picture;
    # a message draws the title, the subtitle and that message instead (the
    # profiler's picture of a run without samples still says what was run).
    empty_message: str | None = None

    @property
    def effective_title(self) -> str:
        if self.title is not None:
            return self.title
        if self.order is Order.TIME:
            return "Flame Chart"
        return "Icicle Graph" if self.inverted else "Flame Graph"

    @property
    def effective_bgcolors(self) -> str:
        if self.bgcolors:
            return self.bgcolors
        if self.colors in ("mem", "chain"):
            return "blue"
        if self.colors in ("io", "wakeup", "red", "green", "blue", "aqua",
                           "yellow", "purple", "orange"):
            return "grey"
        return "yellow"
