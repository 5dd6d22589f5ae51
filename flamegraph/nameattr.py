"""--nameattr files: `NAME<TAB>attr=value<TAB>attr=value...` per line.

Read as flamegraph.pl reads them; the attributes (title, href, target, class,
id) decorate that function's frames.
"""
from __future__ import annotations


def parse_nameattr(text: str) -> dict[str, dict[str, str]]:
    """Pure parser; ValueError names the first malformed line."""
    table: dict[str, dict[str, str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        name, sep, rest = line.partition("\t")
        if not sep:
            raise ValueError(f"line {number} has no tab after the function name")
        attrs = table.setdefault(name, {})
        for pair in rest.split("\t"):
            key, eq, value = pair.partition("=")
            if eq:
                attrs[key] = value
    return table
