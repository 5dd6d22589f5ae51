"""Output formats, one module each, chosen by name or file extension.

A format module writes a Profile (`write(profile, grouping=..., ...)`) or,
for the raw format, the RawProfile it was built from (`write_raw(raw)`);
formats that other tools write can also be read (`read(data) -> Profile`,
used by inputs.py).
A new format is one new module and one line here.
"""
from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from profiler.options import OutputFormat


@dataclasses.dataclass(frozen=True)
class Format:
    kind: OutputFormat
    module: str  # under profiler.export
    extensions: tuple[str, ...]

    def load(self) -> ModuleType:
        return importlib.import_module(f"profiler.export.{self.module}")


FORMATS = (
    Format(OutputFormat.SVG, "svg", (".svg",)),
    Format(OutputFormat.FOLDED, "folded", (".folded", ".txt")),
    Format(OutputFormat.RAW, "raw", (".json",)),
    Format(OutputFormat.PPROF, "pprof", (".pb.gz", ".pb", ".pprof")),
    Format(OutputFormat.SPEEDSCOPE, "speedscope", (".speedscope.json",)),
)


def format_of(kind: OutputFormat) -> Format:
    return next(f for f in FORMATS if f.kind is kind)


def format_for_path(path: str) -> OutputFormat | None:
    """The format a file name's extension names (the longest that matches),
    None if none does; "-" is folded stacks on stdout."""
    if path == "-":
        return OutputFormat.FOLDED
    lower = path.lower()
    matches = [(len(ext), f.kind) for f in FORMATS for ext in f.extensions if lower.endswith(ext)]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def extensions_help() -> str:
    """The extensions, for --help and messages: ".svg = svg, ..."."""
    return ", ".join(f"{'/'.join(f.extensions)} = {f.kind.value}" for f in FORMATS)
