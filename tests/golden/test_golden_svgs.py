"""Golden SVGs: the same input and options give these exact bytes.

After an intended change to the output, rewrite them with
`.venv/bin/python -m pytest tests/golden --bless` and review the diff.
"""
import pathlib

import pytest

from flamegraph.api import render
from flamegraph.folded import decode_lines
from flamegraph.options import ColorMode, MinWidth, Options, Order

HERE = pathlib.Path(__file__).resolve().parent
INPUTS = HERE.parent / "data" / "conformance" / "flamegraph" / "in"
CASES = {
    "java-default": ("fg-perf-java-stacks-01-collapsed-all", Options()),
    "java-palette": ("fg-perf-java-stacks-01-collapsed-kernel", Options(colors="java")),
    "js-inverted": ("fg-perf-js-stacks-01-collapsed-kernel",
                    Options(colors="js", inverted=True, subtitle="icicle")),
    "numa-hash-reverse": ("fg-perf-numa-stacks-01-collapsed-all",
                          Options(color_mode=ColorMode.HASH, reverse=True)),
    "grey-flamechart": ("inf-grey", Options(order=Order.TIME, minwidth=MinWidth(0))),
    "fractional-factor": ("inf-fractional", Options(factor=2.5, countname="bytes",
                                                    bgcolors="#ffffff")),
}
DIFFERENTIAL = ["main;read 10 30", "main;write 40 20", "main;parse;lex 5 5", "main 1 0"]


def _check(name: str, svg: bytes, bless: bool) -> None:
    golden = HERE / f"{name}.svg"
    if bless:  # never a silent pass: a rewritten file is reported, to be reviewed
        if golden.exists() and golden.read_bytes() == svg:
            return
        golden.write_bytes(svg)
        pytest.fail(f"--bless rewrote {golden.name}: review the diff (git diff {golden}) and "
                    "run again without --bless", pytrace=False)
    assert golden.exists(), f"no golden file {golden.name}; run pytest tests/golden --bless"
    assert svg == golden.read_bytes(), f"{golden.name} differs; if intended, re-bless"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name, bless):
    source, options = CASES[name]
    _check(name, render(decode_lines((INPUTS / f"{source}.folded").read_bytes()), options).svg,
           bless)


def test_golden_differential(bless):
    _check("differential", render(DIFFERENTIAL, Options(title="before -> after")).svg, bless)
    _check("differential-negated", render(DIFFERENTIAL, Options(negate=True)).svg, bless)
