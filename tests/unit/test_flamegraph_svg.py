"""The SVG: flamegraph.pl's frame structure, names as data, reproducible bytes."""
import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings, strategies as st

from flamegraph.api import render
from flamegraph.options import ColorMode, MinWidth, Options, Order

NS = {"svg": "http://www.w3.org/2000/svg"}
SVG = "{http://www.w3.org/2000/svg}"
ALLOWED_TAGS = {SVG + t for t in ("svg", "defs", "linearGradient", "stop", "style", "script",
                                  "rect", "text", "g", "title", "desc", "a")}


def parse(result):
    return ET.fromstring(result.svg)


def frames(root):
    return root.findall("svg:g[@id='frames']/svg:g", NS)


def titles(root):
    return [g.find("svg:title", NS).text for g in frames(root)]


HOSTILE = [
    "</script><script>alert(1)</script>",
    "]]><script>alert(2)</script>",
    "<img src=x onerror=alert(3)>",
    "\"' onmouseover=\"alert(4)",
    "a & b &amp c &#60",
    "\u202eevil\u202c",
    "ctl\x01\x07\x1b",
]


def test_hostile_names_are_shown_verbatim_and_inject_nothing():
    lines = [f"proc;{name} {i + 1}" for i, name in enumerate(HOSTILE)]
    root = parse(render(lines))
    for element in root.iter():
        assert element.tag in ALLOWED_TAGS, element.tag
        for attribute in element.attrib:
            assert not attribute.lower().startswith("on") or (element.tag, attribute) == (SVG + "svg", "onload")
    shown = titles(root)
    for name in HOSTILE[:-1]:
        assert any(t.startswith(name + " (") for t in shown), name
    # Characters XML cannot hold are replaced, not dropped or passed through.
    assert any(t.startswith("ctl\ufffd\ufffd\ufffd (") for t in shown)
    scripts = root.findall("svg:script", NS)
    assert len(scripts) == 1 and "alert" not in scripts[0].text


def test_each_frame_is_a_g_with_title_rect_and_text():
    root = parse(render(["a;b 3", "a;c 1"]))
    for g in frames(root):
        assert [child.tag for child in g] == [SVG + "title", SVG + "rect", SVG + "text"]
    assert titles(root)[0] == "all (4 samples, 100%)"
    assert "b (3 samples, 75.00%)" in titles(root)


def test_the_same_input_gives_the_same_bytes_whatever_the_line_order():
    lines = [f"p;f{i % 7};g{i % 3} {i + 1}" for i in range(50)]
    assert render(lines).svg == render(list(reversed(lines))).svg


def test_differential_titles_and_colors():
    root = parse(render(["a;b 1 5", "a;c 4 2"]))
    by_name = {g.find("svg:title", NS).text.split(" (")[0]: g for g in frames(root)}
    assert by_name["b"].find("svg:title", NS).text == "b (5 samples, 71.43%; +57.14%)"
    assert by_name["c"].find("svg:title", NS).text == "c (2 samples, 28.57%; -28.57%)"
    assert by_name["b"].find("svg:rect", NS).get("fill") == "rgb(255,0,0)"
    assert by_name["c"].find("svg:rect", NS).get("fill") == "rgb(105,105,255)"
    negated = parse(render(["a;b 1 5", "a;c 4 2"], Options(negate=True)))
    fills = {g.find("svg:title", NS).text.split(" (")[0]: g.find("svg:rect", NS).get("fill")
             for g in frames(negated)}
    assert fills["b"] == "rgb(0,0,255)" and fills["c"] == "rgb(255,105,105)"


def test_annotations_are_stripped_from_titles_and_labels():
    root = parse(render(["a;vfs_read_[k] 10"], Options(colors="java")))
    assert "vfs_read (10 samples, 100.00%)" in titles(root)
    assert all("_[k]" not in (g.find("svg:text", NS).text or "") for g in frames(root))


def test_default_titles_subtitle_and_notes():
    assert parse(render(["a 1"])).find("svg:text[@id='title']", NS).text == "Flame Graph"
    assert parse(render(["a 1"], Options(inverted=True))).find(
        "svg:text[@id='title']", NS).text == "Icicle Graph"
    root = parse(render(["a 1"], Options(order=Order.TIME, subtitle="sub <b>", notes="n & m")))
    assert root.find("svg:text[@id='title']", NS).text == "Flame Chart"
    assert root.find("svg:text[@id='subtitle']", NS).text == "sub <b>"
    assert root.find("svg:desc", NS).text == "n & m"


def test_inverted_puts_the_root_on_top():
    flame = parse(render(["a;b 1"]))
    icicle = parse(render(["a;b 1"], Options(inverted=True)))
    ys = lambda root: [float(g.find("svg:rect", NS).get("y")) for g in frames(root)]
    assert ys(flame) == sorted(ys(flame), reverse=True)
    assert ys(icicle) == sorted(ys(icicle))


def test_labels_fit_the_box_like_flamegraph_pl():
    root = parse(render(["short 1", "a_very_long_function_name_indeed 1000"], Options(width=200)))
    labels = {g.find("svg:title", NS).text.split(" (")[0]: g.find("svg:text", NS).text
              for g in frames(root)}
    assert labels["a_very_long_function_name_indeed"].endswith("..")
    assert labels.get("short") in (None, "")


def test_settings_json_cannot_break_out_of_the_script():
    svg = render(["a 1"], Options(nametype="]]></script><x>", countname="<&>")).svg.decode()
    script = re.search(r"<script[^>]*><!\[CDATA\[(.*?)\]\]></script>", svg, re.S).group(1)
    assert "]]>" not in script and "</script" not in script
    assert "\\u003c/script\\u003e" in script


def test_nameattr_adds_attributes_and_links():
    options = Options(nameattr={"b": {"title": "custom <t>", "href": "https://e.x/?a=1&b=2",
                                      "class": "hot\"x"}})
    root = parse(render(["a;b 1"], options))
    b = [g for g in frames(root) if g.find("svg:title", NS).text == "custom <t>"][0]
    assert b.get("class") == 'hot"x'
    link = b.find("svg:a", NS)
    assert link.get("{http://www.w3.org/1999/xlink}href") == "https://e.x/?a=1&b=2"


def test_encoding_is_declared_and_used():
    svg = render(["caf\u00e9 1"], Options(encoding="ISO-8859-1")).svg
    assert svg.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"')
    assert "caf\u00e9".encode("latin-1") in svg
    assert ET.fromstring(svg) is not None


def test_no_valid_input_draws_the_error_picture():
    result = render(["garbage", ""])
    assert not result.ok and result.ignored_lines == 2
    assert b"No valid input" in result.svg
    assert not render(["a 0"]).ok


def test_minwidth_percent_and_total():
    root = parse(render(["a 99", "b 1"], Options(minwidth=MinWidth(2, percent=True))))
    assert not any(t.startswith("b (") for t in titles(root))
    wide = parse(render(["a 10"], Options(total=20)))
    rect = frames(wide)[0].find("svg:rect", NS)
    assert float(rect.get("width")) == 590.0  # half of 1180: the total is 20
    assert render(["a 10"], Options(total=5)).warnings


def test_random_colors_are_random_and_hash_colors_fixed():
    lines = [f"f{i} 1" for i in range(30)]
    assert render(lines, Options(color_mode=ColorMode.HASH)).svg == \
        render(lines, Options(color_mode=ColorMode.HASH)).svg
    assert render(lines, Options(color_mode=ColorMode.RANDOM)).svg != \
        render(lines, Options(color_mode=ColorMode.RANDOM)).svg


any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(any_text, max_size=12), st.booleans(), st.booleans())
def test_any_input_gives_a_well_formed_svg(lines, inverted, reverse):
    result = render(lines, Options(inverted=inverted, reverse=reverse))
    root = ET.fromstring(result.svg)
    assert root.tag == SVG + "svg"
    if result.ok:
        assert frames(root)[0].find("svg:title", NS).text.startswith("all (")
