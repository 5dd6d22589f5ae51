"""Write the flame graph as a self-contained interactive SVG (svgwrite).

Each frame is a `<g>` holding `<title>`, `<rect>` and `<text>`, as in
flamegraph.pl, so tools that read its SVGs read ours. Names are data: they
reach the document only as XML text escaped by svgwrite, after characters XML
cannot hold are replaced. Settings reach the JavaScript as one JSON object.
"""
from __future__ import annotations

import json
import re
from importlib import resources
from typing import Sequence

import svgwrite

from flamegraph.color import Colorer, background, frame_fill, strip_annotation
from flamegraph.layout import XPAD, Box, Canvas
from flamegraph.options import Options

# XML 1.0 forbids C0 controls other than tab/LF/CR, lone surrogates, U+FFFE/F.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_THOUSANDS = re.compile(r"(\d)(?=(\d{3})+$)")


def xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _asset(name: str) -> str:
    return resources.files("flamegraph").joinpath("assets", name).read_text(encoding="utf-8")


def commify(count: float) -> str:
    """flamegraph.pl's sample count: rounded to an integer, thousands separated."""
    text = "%.0f" % count
    sign = "-" if text.startswith("-") else ""
    return sign + _THOUSANDS.sub(r"\1,", text.lstrip("-"))


def frame_title(box: Box, options: Options, total: float) -> str:
    frame = box.frame
    samples = "%.0f" % (frame.width * options.factor)
    shown = commify(frame.width * options.factor)
    if frame.depth == 0 and frame.name == "":
        return f"all ({shown} {options.countname}, 100%)"
    percent = "%.2f" % (100 * float(samples) / (total * options.factor))
    name = strip_annotation(frame.name)
    if frame.delta is None:
        return f"{name} ({shown} {options.countname}, {percent}%)"
    delta = -frame.delta if options.negate else frame.delta
    delta_pct = "%.2f" % (100 * delta / (total * options.factor))
    if delta > 0:
        delta_pct = "+" + delta_pct
    return f"{name} ({shown} {options.countname}, {percent}%; {delta_pct}%)"


def _settings_json(options: Options) -> str:
    settings = {
        "nametype": options.nametype,
        "countname": options.countname,
        "fontsize": options.fontsize,
        "fontwidth": options.fontwidth,
        "xpad": XPAD,
        "inverted": options.inverted,
        "searchcolor": options.searchcolor,
    }
    text = json.dumps(settings, sort_keys=True, ensure_ascii=True)
    # Inside CDATA (and if the SVG is inlined into HTML) '<', '>' and '&' must
    # never appear literally; JSON lets us spell them as escapes.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _script(options: Options) -> str:
    code = f"var fg_settings = {_settings_json(options)};\n" + _asset("flamegraph.js")
    if "]]>" in code:  # would end the CDATA section early
        raise AssertionError("flamegraph.js must not contain ']]>'")
    return code


def _text(dwg, content: str, x: float, y: float, **attrs):
    return dwg.text(xml_safe(content), x=[x], y=[y], **attrs)


def document(canvas: Canvas, boxes: Sequence[Box], options: Options, total: float,
             max_delta: float, colorer: Colorer) -> str:
    width, height = canvas.width, canvas.height
    dwg = svgwrite.Drawing(size=(width, _num(height)), debug=False)
    dwg.viewbox(0, 0, width, _num(height))
    dwg.attribs["onload"] = "init(evt)"
    if options.notes:
        dwg.set_desc(desc=xml_safe(options.notes))
    stops = background(options.effective_bgcolors)
    gradient = dwg.linearGradient(id="background", start=(0, 0), end=(0, 1))
    gradient.add_stop_color(offset="5%", color=stops[0])
    gradient.add_stop_color(offset="95%", color=stops[1])
    dwg.defs.add(gradient)
    dwg.add(dwg.style(content=_asset("flamegraph.css")))
    dwg.add(dwg.script(content=_script(options), type="text/ecmascript"))
    dwg.add(dwg.rect(insert=(0, 0), size=(width, _num(height)), fill="url(#background)"))

    font = {"font-family": options.fonttype, "font-size": _num(options.fontsize)}
    title_size = _num(options.fontsize + 5)
    dwg.add(_text(dwg, options.effective_title, width // 2, options.fontsize * 2,
                  id="title", **{**font, "font-size": title_size, "text-anchor": "middle"}))
    if options.subtitle:
        dwg.add(_text(dwg, options.subtitle, width // 2, options.fontsize * 4,
                      id="subtitle", **{**font, "text-anchor": "middle"}))
    bottom = _num(height - canvas.bottom_pad / 2)
    dwg.add(_text(dwg, " ", XPAD, bottom, id="details", **font))
    dwg.add(_text(dwg, "Reset Zoom", XPAD, options.fontsize * 2, id="unzoom",
                  class_="hide", **font))
    dwg.add(_text(dwg, "Search", width - XPAD - 100, options.fontsize * 2, id="search", **font))
    dwg.add(_text(dwg, "ic", width - XPAD - 16, options.fontsize * 2, id="ignorecase", **font))
    dwg.add(_text(dwg, " ", width - XPAD - 100, bottom, id="matched", **font))

    frames = dwg.g(id="frames", **font)
    dwg.add(frames)
    # svgwrite holds the skeleton; the frames (tens of thousands) are streamed
    # into it: an svgwrite object tree for them costs ~4 s and 200 MB on a
    # 30,000-stack profile. They use the same escaping, in xml_text/xml_attr.
    empty = frames.tostring()
    assert empty.endswith(" />")
    head, tail = dwg.tostring().split(empty, 1)
    parts = [head, empty[:-3], ">\n"]
    for box in boxes:
        parts.append(_frame(box, options, total, max_delta, colorer))
    parts.append("</g>")
    parts.append(tail)
    return "".join(parts)


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})


def xml_text(text: str) -> str:
    """Character data: XML-illegal characters replaced, markup escaped."""
    return xml_safe(text).translate(_TEXT_ESCAPES)


def xml_attr(text: str) -> str:
    """A double-quoted attribute value."""
    return xml_safe(text).translate(_ATTR_ESCAPES)


def _frame(box: Box, options: Options, total: float, max_delta: float,
           colorer: Colorer) -> str:
    frame = box.frame
    attrs = options.nameattr.get(frame.name, {}) if options.nameattr else {}
    title = attrs.get("title") or frame_title(box, options, total)
    x1 = "%.1f" % box.x1
    x2 = "%.1f" % box.x2
    width = "%.1f" % (float(x2) - float(x1))
    height = "%.1f" % (box.y2 - box.y1)
    fill = frame_fill(frame.name, frame.delta, max_delta, options.negate, colorer)
    label = "all" if frame.depth == 0 and frame.name == "" else box.label
    where = options.sources.get(frame.name) if options.sources else None
    # The source goes in a title of the rect's own, the tooltip a browser
    # shows over it; the group's first title stays "NAME (N samples, P%)",
    # which the script reads names from.
    rect_end = f"><title>{xml_text(title + chr(10) + where)}</title></rect>" if where else " />"
    body = (f'<rect fill="{fill}" height="{height}" rx="2" ry="2" width="{width}" '
            f'x="{x1}" y="{"%.1f" % box.y1}"{rect_end}'
            f'<text x="{"%.2f" % (box.x1 + 3)}" y="{_num(3 + (box.y1 + box.y2) / 2)}">'
            f'{xml_text(label)}</text>')
    group_attrs = "".join(f' {key}="{xml_attr(attrs[key])}"' for key in ("class", "id")
                          if key in attrs)
    if "href" in attrs:
        target = xml_attr(attrs.get("target", "_top"))
        body = f'<a target="{target}" xlink:href="{xml_attr(attrs["href"])}">{body}</a>'
    return f"<g{group_attrs}><title>{xml_text(title)}</title>{body}</g>\n"


def _num(value: float) -> str:
    """Numbers as flamegraph.pl prints them: no trailing '.0'."""
    return ("%.2f" % value).rstrip("0").rstrip(".")


def error_document(options: Options) -> str:
    """The picture for input with no valid line: flamegraph.pl's, or the
    title, subtitle and `options.empty_message`."""
    font = {"font-family": options.fonttype, "text-anchor": "middle"}
    lines = [("ERROR: No valid input provided to flamegraph.", options.fontsize + 2, "")]
    if options.empty_message is not None:
        lines = [(options.effective_title, options.fontsize + 5, "title"),
                 *([(options.subtitle, options.fontsize, "subtitle")] if options.subtitle else []),
                 (options.empty_message, options.fontsize + 2, "")]
    height = options.fontsize * (3 + 2 * len(lines))
    dwg = svgwrite.Drawing(size=(options.width, _num(height)), debug=False)
    dwg.viewbox(0, 0, options.width, _num(height))
    for i, (text, size, id_) in enumerate(lines):
        attrs = {**font, "font-size": _num(size), **({"id": id_} if id_ else {})}
        dwg.add(_text(dwg, text, options.width // 2, options.fontsize * (2 + 2 * i), **attrs))
    return dwg.tostring()


def xml_declaration(encoding: str | None) -> str:
    enc = f' encoding="{encoding}"' if encoding else ""
    return (f'<?xml version="1.0"{enc} standalone="no"?>\n'
            '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
            '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n')
