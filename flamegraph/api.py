"""The one entry point other code uses: folded lines in, SVG bytes out."""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

from flamegraph.color import Colorer
from flamegraph.errors import InputError
from flamegraph.folded import Folded, parse_folded
from flamegraph.layout import drawn_total, layout, min_width_in_counts
from flamegraph.merge import merge, ordered, total_of
from flamegraph.options import Options
from flamegraph.svg import document, error_document, xml_declaration


@dataclasses.dataclass(frozen=True)
class Rendered:
    svg: bytes
    valid_lines: int  # 0 (or a zero total): `svg` is the "no valid input" picture
    ignored_lines: int
    ignored_line_numbers: tuple[int, ...]  # the first few, 1-based
    palette_map: Mapping[str, str]  # --cp: every name's color, to be saved
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.valid_lines > 0


def render(lines: Iterable[str], options: Options = Options()) -> Rendered:
    """Render folded stacks (`frame;frame;frame COUNT [COUNT2]`) as an SVG."""
    return render_folded(parse_folded(lines), options)


def render_folded(folded: Folded, options: Options = Options()) -> Rendered:
    entries = ordered(folded.entries, options.order, options.reverse)
    total = total_of(entries)
    warnings = []
    if not entries or not total > 0:
        svg = _encode(error_document(options), options.encoding)
        return Rendered(svg, 0, folded.ignored, folded.ignored_line_numbers,
                        dict(options.palette_map or {}))
    if not math.isfinite(total):
        raise InputError("the counts add up to more than a number can hold",
                         "scale the counts down (flamegraph --factor can scale them back)")
    if options.total and options.total < total and options.total / total > 0.02:
        warnings.append(f"--total {options.total:g} is less than the input's total "
                        f"{total:g}, so it is ignored")
    drawn = drawn_total(options, total)
    min_width = min_width_in_counts(options.minwidth, options, drawn)
    merged = merge(entries, min_width, chain=options.colors == "chain")
    canvas, boxes = layout(merged, options, drawn)
    colorer = Colorer(options.colors, options.color_mode, options.palette_map)
    body = document(canvas, boxes, options, drawn, merged.max_delta, colorer)
    return Rendered(_encode(body, options.encoding), len(entries), folded.ignored,
                    folded.ignored_line_numbers, colorer.palette_map, tuple(warnings))


def _encode(body: str, encoding: str | None) -> bytes:
    text = xml_declaration(encoding) + body + "\n"
    # Characters the declared encoding cannot hold become character references.
    return text.encode(encoding or "utf-8", errors="xmlcharrefreplace")
