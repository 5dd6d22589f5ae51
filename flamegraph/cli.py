"""`flamegraph [OPTIONS] [FILE ...]`: a drop-in for flamegraph.pl.

This module only translates argv into `Options` and does the I/O; known
failures become one message on stderr and an exit status, never a traceback.
"""
from __future__ import annotations

import argparse
import codecs
import pathlib
import re
import sys
from typing import Iterable, Iterator, Sequence

from flamegraph.color import background, read_palette_map, write_palette_map
from flamegraph.errors import InputError, OptionError
from flamegraph.folded import describe_ignored
from flamegraph.nameattr import parse_nameattr
from flamegraph.options import PALETTES, ColorMode, MinWidth, Options, Order
from flamegraph.output import run_command, write_all, write_atomically

PALETTE_FILE = "palette.map"  # --cp reads and writes it in the working directory
_DEFAULTS = Options()
_ENCODING_NAME = re.compile(r"[A-Za-z0-9._-]{1,40}\Z")


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """The flamegraph.pl options; shared with `profiler record`."""
    d = _DEFAULTS
    group = parser.add_argument_group("flame graph (flamegraph.pl options)")
    add = group.add_argument
    add("--title", help='title text (default "Flame Graph", "Icicle Graph" or "Flame Chart")')
    add("--subtitle", default=d.subtitle, help="second title line")
    add("--width", type=int, default=d.width, help=f"image width in pixels (default {d.width})")
    add("--height", type=int, default=d.height, help=f"frame height in pixels (default {d.height})")
    add("--minwidth", default="0.1", help='omit frames narrower than this: pixels, or "N%%" of the total (default 0.1)')
    add("--fonttype", default=d.fonttype, help=f'font family (default "{d.fonttype}")')
    add("--fontsize", type=float, default=d.fontsize, help=f"font size (default {d.fontsize:g})")
    add("--fontwidth", type=float, default=d.fontwidth, help=f"average glyph width relative to the font size (default {d.fontwidth})")
    add("--countname", default=d.countname, help=f'count type label (default "{d.countname}")')
    add("--nametype", default=d.nametype, help=f'name type label (default "{d.nametype}")')
    add("--colors", "--color", default=d.colors, metavar="PALETTE",
        help="palette: " + ", ".join(PALETTES) + f" (default {d.colors})")
    add("--bgcolors", help='background: yellow, blue, green, grey, or a flat "#rrggbb"')
    add("--hash", action="store_true", help="colors keyed by a hash of the name (flamegraph.pl --hash)")
    add("--random", action="store_true", help="random colors (not reproducible)")
    add("--cp", action="store_true", help=f"consistent palette: read and update ./{PALETTE_FILE}")
    add("--reverse", action="store_true", help="merge stacks from the leaf end")
    add("--inverted", action="store_true", help="icicle graph (root at the top)")
    add("--flamechart", action="store_true", help="flame chart: keep input order, merge only adjacent stacks")
    add("--negate", action="store_true", help="swap the differential hues (blue <-> red)")
    add("--factor", type=float, default=d.factor, help="scale the counts shown in titles")
    add("--total", type=float, help="total to scale widths against (if larger than the input's)")
    add("--nameattr", metavar="FILE", help="per-function attributes: NAME<TAB>attr=value<TAB>...")
    add("--notes", default=d.notes, help="a note embedded in the SVG")
    add("--encoding", help="input and output character encoding (default UTF-8)")


def options_from_args(ns: argparse.Namespace, **overrides) -> Options:
    """Translate parsed arguments into Options; OptionError for bad values."""
    if ns.width <= 0 or ns.height <= 0:
        raise OptionError("--width and --height must be positive")
    if not (ns.fontsize > 0 and ns.fontwidth > 0):
        raise OptionError("--fontsize and --fontwidth must be positive")
    if ns.total is not None and not ns.total > 0:
        raise OptionError("--total must be positive")
    try:
        minwidth = MinWidth.parse(ns.minwidth)
    except ValueError:
        raise OptionError(f"--minwidth {ns.minwidth!r} is not a number of pixels or a percentage",
                          'examples: --minwidth 0.5, --minwidth 1%') from None
    if ns.colors not in PALETTES:
        raise OptionError(f"unknown palette {ns.colors!r}", "one of: " + ", ".join(PALETTES))
    if ns.bgcolors is not None and background(ns.bgcolors) is None:
        raise OptionError(f"unrecognized --bgcolors {ns.bgcolors!r}",
                          'yellow, blue, green, grey, or "#rrggbb"')
    if ns.encoding is not None:
        check_encoding(ns.encoding)
    mode = ColorMode.HASH if ns.hash else ColorMode.RANDOM if ns.random else ColorMode.NAME
    values = dict(
        title=ns.title, subtitle=ns.subtitle, width=ns.width, height=ns.height,
        minwidth=minwidth, fonttype=ns.fonttype, fontsize=ns.fontsize,
        fontwidth=ns.fontwidth, countname=ns.countname, nametype=ns.nametype,
        colors=ns.colors, bgcolors=ns.bgcolors, color_mode=mode,
        palette_map=read_palette_file() if ns.cp else None,
        reverse=ns.reverse, inverted=ns.inverted,
        order=Order.TIME if ns.flamechart else Order.MERGED, negate=ns.negate,
        factor=ns.factor, total=ns.total,
        nameattr=read_nameattr(ns.nameattr) if ns.nameattr else {},
        notes=ns.notes, encoding=ns.encoding,
    )
    values.update(overrides)
    return Options(**values)


def check_encoding(name: str) -> None:
    try:
        codecs.lookup(name)
    except LookupError:
        raise OptionError(f"unknown --encoding {name!r}", "e.g. --encoding ISO-8859-1") from None
    if not _ENCODING_NAME.match(name):
        raise OptionError(f"--encoding {name!r} is not a plain encoding name")


def read_palette_file() -> dict[str, str]:
    path = pathlib.Path(PALETTE_FILE)
    if not path.exists():
        return {}
    try:
        return read_palette_map(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None


def read_nameattr(path: str) -> dict:
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"cannot read --nameattr file {path}: {e.strerror}") from None
    try:
        return parse_nameattr(text)
    except ValueError as e:
        raise InputError(f"invalid --nameattr file {path}: {e}",
                         "each line: NAME<TAB>attr=value[<TAB>attr=value...]") from None


def read_lines(paths: Sequence[str], encoding: str) -> Iterator[str]:
    """Lines of the named files, concatenated ('-' or none: stdin)."""
    for path in paths or ["-"]:
        if path == "-":
            yield from _decoded(sys.stdin.buffer, encoding)
            continue
        try:
            with open(path, "rb") as handle:
                yield from _decoded(handle, encoding)
        except IsADirectoryError:
            raise InputError(f"{path} is a directory, not a folded-stacks file") from None
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror}",
                             "give a file of folded stacks, or - for standard input") from None


def _decoded(handle, encoding: str) -> Iterable[str]:
    # Binary iteration splits on b"\n" only; names may contain other breaks.
    for raw in handle:
        yield raw.decode(encoding, errors="replace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flamegraph",
        description="Render folded stacks (frame;frame;frame COUNT) as an interactive SVG "
                    "flame graph. A drop-in for flamegraph.pl: same options, same picture.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="folded stacks (default: standard input)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the SVG here (default: stdout)")
    add_render_arguments(parser)
    return parser


def perl_style_argv(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """flamegraph.pl (Getopt::Long) also takes `-title x`: accept that spelling."""
    long_names = {s[2:] for s in parser._option_string_actions if s.startswith("--")}
    out = []
    for arg in argv:
        if arg == "--":
            out.extend(argv[len(out):])
            break
        name = arg[1:].split("=", 1)[0]
        if arg.startswith("-") and not arg.startswith("--") and len(name) > 1 and name in long_names:
            arg = "-" + arg
        out.append(arg)
    return out


def report(result) -> None:
    if result.ignored_lines:
        print("flamegraph: " + describe_ignored(result.ignored_lines,
                                                result.ignored_line_numbers), file=sys.stderr)
    for warning in result.warnings:
        print(f"flamegraph: {warning}", file=sys.stderr)
    if not result.ok:
        print("flamegraph: ERROR: no stack counts found (no valid input line)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = parser.parse_args(perl_style_argv(argv, parser))
    except SystemExit as e:  # argparse has printed its message
        return int(e.code or 0)
    # Imported here, not above: `profiler record` shares this module's options
    # and should not pay for svgwrite before it needs to draw.
    from flamegraph.api import render

    def body() -> int:
        options = options_from_args(ns)
        result = render(read_lines(ns.files, ns.encoding or "utf-8"), options)
        if ns.output:
            write_atomically(ns.output, result.svg)
        else:
            write_all(sys.stdout.buffer, result.svg)
        if ns.cp:
            write_atomically(PALETTE_FILE, write_palette_map(result.palette_map).encode("utf-8"))
        report(result)
        return 0 if result.ok else 2

    return run_command("flamegraph", body)


def main_entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
