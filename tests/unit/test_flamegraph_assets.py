"""The embedded script and style: safe inside CDATA, names only ever as text."""
from importlib import resources

import pytest


def asset(name):
    return resources.files("flamegraph").joinpath("assets", name).read_text(encoding="utf-8")


def test_script_never_ends_its_cdata_section():
    assert "]]>" not in asset("flamegraph.js")


def test_style_never_ends_its_cdata_section():
    assert "]]>" not in asset("flamegraph.css")


@pytest.mark.parametrize("sink", ["innerHTML", "outerHTML", "insertAdjacentHTML", "eval(",
                                  "document.write", "new Function", "setTimeout(\"",
                                  "setTimeout('"])
def test_script_has_no_html_or_code_sinks(sink):
    assert sink not in asset("flamegraph.js")


def test_script_reads_settings_and_defines_init():
    code = asset("flamegraph.js")
    assert "fg_settings" in code
    assert "var init" in code or "function init" in code
