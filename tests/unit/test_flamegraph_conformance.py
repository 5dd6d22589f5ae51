"""The frames we draw equal flamegraph.pl's on FlameGraph's and inferno's inputs.

tests/data/conformance is a copy of ../shared/conformance: for each input and
option set, the (name, count, level) frames of flamegraph.pl's SVG. Our SVG
is reduced by the same svgframes.py, so this compares the drawn pictures.
"""
import importlib.util
import json
import pathlib

import pytest

from flamegraph.api import render
from flamegraph.folded import decode_lines
from flamegraph.options import MinWidth, Options, Order

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "conformance"
OPTION_SETS = {
    "default": Options(),
    "minwidth0": Options(minwidth=MinWidth(0)),
    "reverse": Options(reverse=True),
    "inverted": Options(inverted=True),
    "flamechart": Options(order=Order.TIME),
    "factor": Options(factor=2.5),
    "countname": Options(countname="bytes"),
}


def _svgframes():
    spec = importlib.util.spec_from_file_location("svgframes", DATA / "svgframes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SVGFRAMES = _svgframes()
CASES = sorted(p.name.split(".")[0:2] for p in (DATA / "flamegraph" / "expected").glob("*.json"))


def test_every_input_and_option_set_is_covered():
    inputs = {p.stem for p in (DATA / "flamegraph" / "in").glob("*.folded")}
    assert len(inputs) == 28
    assert {tuple(c) for c in CASES} == {(i, o) for i in inputs for o in OPTION_SETS}


@pytest.mark.parametrize("name,option_set", CASES, ids=[".".join(c) for c in CASES])
def test_frames_equal_flamegraph_pl(name, option_set, tmp_path):
    data = (DATA / "flamegraph" / "in" / f"{name}.folded").read_bytes()
    options = OPTION_SETS[option_set]
    result = render(decode_lines(data), options)
    svg = tmp_path / "out.svg"
    svg.write_bytes(result.svg)
    ours = SVGFRAMES.frames(str(svg), icicle=options.inverted)
    expected = [tuple(f) for f in json.loads(
        (DATA / "flamegraph" / "expected" / f"{name}.{option_set}.json").read_text())]
    assert len(ours) == len(expected)
    assert ours == sorted(expected)
