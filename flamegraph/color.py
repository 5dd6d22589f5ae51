"""Frame colors, computed exactly as flamegraph.pl computes them.

flamegraph.pl's default color is a pure function of the name: it seeds Perl's
drand48 with the sum of the name's bytes and draws once. Reproducing Perl's
generator (not Python's `random`) keeps our colors identical to theirs, and
stable across runs and graphs.
"""
from __future__ import annotations

import random
import re
from typing import Callable, Mapping, MutableMapping

from flamegraph.options import ColorMode

_MASK48 = (1 << 48) - 1
_ANNOTATION = re.compile(r"_\[[kwij]\]\Z")

GREY_FRAMES = {"--": "rgb(160,160,160)", "-": "rgb(200,200,200)"}

BACKGROUNDS = {
    "yellow": ("#eeeeee", "#eeeeb0"),
    "blue": ("#eeeeee", "#e0e0ff"),
    "green": ("#eef2ee", "#e0ffe0"),
    "grey": ("#f8f8f8", "#e8e8e8"),
}
_FLAT_BACKGROUND = re.compile(r"#[0-9A-Fa-f]{6}\Z")


def perl_seeded_rand(seed: int) -> float:
    """The first `rand(1)` after Perl's `srand(seed)` (Perl's own drand48)."""
    state = ((seed & 0xFFFFFFFF) << 16) + 0x330E
    state = (0x5DEECE66D * state + 0xB) & _MASK48
    return state / float(1 << 48)


def name_value(name: str) -> float:
    """flamegraph.pl's default per-name value: srand(sum of bytes); rand(1)."""
    return perl_seeded_rand(sum(name.encode("utf-8", "surrogatepass")))


def namehash(name: str) -> float:
    """flamegraph.pl's --hash value: early characters weigh most."""
    vector = 0.0
    weight = 1.0
    maximum = 1.0
    mod = 10
    # A module prefix ("module`function") is cut to its first character.
    name = re.sub(r".(.*?)`", "", name, count=1, flags=re.S)
    for byte in name.encode("utf-8", "surrogatepass"):
        i = byte % mod
        vector += (i / (mod - 1)) * weight
        mod += 1
        maximum += weight
        weight *= 0.70
        if mod > 12:
            break
    return 1 - vector / maximum


def _rgb(r: float, g: float, b: float) -> str:
    return f"rgb({int(r)},{int(g)},{int(b)})"


def _java(name: str) -> str:
    if name.endswith("_[j]"):
        return "green"
    if name.endswith("_[i]"):
        return "aqua"
    if re.match(r"L?(java|javax|jdk|net|org|com|io|sun)/", name):
        return "green"
    if ":::" in name:
        return "green"
    if "::" in name:
        return "yellow"
    if name.endswith("_[k]"):
        return "orange"
    return "red"


def _perl(name: str) -> str:
    if "::" in name:
        return "yellow"
    if "Perl" in name or ".pl" in name:
        return "green"
    if name.endswith("_[k]"):
        return "orange"
    return "red"


def _js(name: str) -> str:
    if name.endswith("_[j]"):
        return "green" if "/" in name else "aqua"
    if "::" in name:
        return "yellow"
    if re.search(r"/.*\.js", name):
        return "green"
    if ":" in name:
        return "aqua"
    if name == " ":
        return "green"
    if "_[k]" in name:
        return "orange"
    return "red"


# Multi palettes pick a color palette per frame from its name and annotation.
_CHOOSERS: Mapping[str, Callable[[str], str]] = {
    "java": _java,
    "perl": _perl,
    "js": _js,
    "wakeup": lambda name: "aqua",
    "chain": lambda name: "aqua" if "_[w]" in name else "blue",
}

# Single palettes: (v1, v2, v3) -> rgb, flamegraph.pl's formulas.
_PALETTES: Mapping[str, Callable[[float, float, float], str]] = {
    "hot": lambda v1, v2, v3: _rgb(205 + int(50 * v3), int(230 * v1), int(55 * v2)),
    "mem": lambda v1, v2, v3: _rgb(0, 190 + int(50 * v2), int(210 * v1)),
    "io": lambda v1, v2, v3: _rgb(80 + int(60 * v1), 80 + int(60 * v1), 190 + int(55 * v2)),
    "red": lambda v1, v2, v3: _rgb(200 + int(55 * v1), 50 + int(80 * v1), 50 + int(80 * v1)),
    "green": lambda v1, v2, v3: _rgb(50 + int(60 * v1), 200 + int(55 * v1), 50 + int(60 * v1)),
    "blue": lambda v1, v2, v3: _rgb(80 + int(60 * v1), 80 + int(60 * v1), 205 + int(50 * v1)),
    "yellow": lambda v1, v2, v3: _rgb(175 + int(55 * v1), 175 + int(55 * v1), 50 + int(20 * v1)),
    "purple": lambda v1, v2, v3: _rgb(190 + int(65 * v1), 80 + int(60 * v1), 190 + int(65 * v1)),
    "aqua": lambda v1, v2, v3: _rgb(50 + int(60 * v1), 165 + int(55 * v1), 165 + int(55 * v1)),
    "orange": lambda v1, v2, v3: _rgb(190 + int(65 * v1), 90 + int(65 * v1), 0),
}


def strip_annotation(name: str) -> str:
    """Drop a trailing `_[k]`, `_[j]`, `_[i]` or `_[w]` (they only pick colors)."""
    return _ANNOTATION.sub("", name)


class Colorer:
    """Assigns each frame name its fill; remembers names for --cp."""

    def __init__(self, palette: str, mode: ColorMode, palette_map: Mapping[str, str] | None):
        self._palette = palette
        self._mode = mode
        self._consistent = palette_map is not None
        self.palette_map: MutableMapping[str, str] = dict(palette_map or {})
        self._random = random.Random()

    def _values(self, name: str) -> tuple[float, float, float]:
        if self._mode is ColorMode.HASH:
            v2 = namehash(name[::-1])
            return namehash(name), v2, v2
        if self._mode is ColorMode.RANDOM:
            return self._random.random(), self._random.random(), self._random.random()
        v = name_value(name)
        return v, v, v

    def color(self, name: str) -> str:
        if self._consistent:
            known = self.palette_map.get(name)
            if known is None:
                known = self.palette_map[name] = self._compute(name)
            return known
        return self._compute(name)

    def _compute(self, name: str) -> str:
        palette = self._palette
        chooser = _CHOOSERS.get(palette)
        if chooser is not None:
            palette = chooser(name)
        formula = _PALETTES.get(palette)
        if formula is None:
            return "rgb(0,0,0)"
        return formula(*self._values(name))


def frame_fill(name: str, delta: float | None, max_delta: float, negate: bool,
               colorer: Colorer) -> str:
    """A frame's fill: grey separators, the differential scale, or the palette."""
    grey = GREY_FRAMES.get(name)
    if grey is not None:
        return grey
    if delta is not None:
        return differential_fill(delta, max_delta, negate)
    return colorer.color(name)


def differential_fill(delta: float, max_delta: float, negate: bool) -> str:
    """Red where a frame's own samples grew, blue where they shrank."""
    if negate:
        delta = -delta
    r = g = b = 255
    if delta > 0:
        g = b = int(210 * (max_delta - delta) / max_delta)
    elif delta < 0:
        r = g = int(210 * (max_delta + delta) / max_delta)
    return f"rgb({r},{g},{b})"


def background(bgcolors: str) -> tuple[str, str] | None:
    """The gradient's two stops for --bgcolors; None if it is not recognised."""
    if bgcolors in BACKGROUNDS:
        return BACKGROUNDS[bgcolors]
    if _FLAT_BACKGROUND.match(bgcolors):
        return bgcolors, bgcolors
    return None


def read_palette_map(text: str) -> dict[str, str]:
    """palette.map as flamegraph.pl writes it: `name->rgb(r,g,b)` per line."""
    mapping: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("->")
        if sep:
            mapping[key] = value.split("->")[0]
    return mapping


def write_palette_map(mapping: Mapping[str, str]) -> str:
    return "".join(f"{key}->{mapping[key]}\n" for key in sorted(mapping))
