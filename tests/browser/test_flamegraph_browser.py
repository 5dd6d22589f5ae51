"""The SVG's JavaScript in a real headless Chromium: hover, zoom, search, URL state.

The SVGs are rendered here with `flamegraph.api.render` and served over HTTP on
127.0.0.1 (the URL query is part of what is tested). One browser per module.
"""
import re
import urllib.parse

import pytest

from browserutil import chromium, static_server
from flamegraph.api import render
from flamegraph.options import Options

pytestmark = pytest.mark.browser

SVG_NS = "http://www.w3.org/2000/svg"
SEARCH_COLOR = "rgb(230,0,230)"
FULL = 1200 - 2 * 10  # default width minus both xpads

# 118 samples on 1180 px: 10 px a sample, so every rect edge is exact.
FOLDED = [
    "main;init;parse 10",
    "main;init;load 8",
    "main;run;compute;inner 40",
    "main;run;compute 20",
    "main;run;io 15",
    "main;idle 5",
    "other;work 20",
]

HOSTILE = [
    "</script><script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "]]><script>alert(3)</script>",
    "\"' onmouseover=\"alert(4)",
    "a & b &amp c &#60",  # no ';': it separates frames
    "\u202eevil\u202c",
    "x<svg onload=alert(5)>",
]


def expected_matched(folded, pattern, flags=0):
    """flamegraph.pl's "Matched:" from the input alone: the share of samples
    whose stack holds a matching frame (nested matches counted once)."""
    stacks = [line.rsplit(" ", 1) for line in folded]
    total = sum(int(count) for _, count in stacks)
    hit = sum(int(count) for stack, count in stacks
              if any(re.search(pattern, name, flags) for name in stack.split(";")))
    return "Matched: %.2f%%" % (100 * hit / total)


# ---- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(directory, base URL) of a static HTTP server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("svgs")
    with static_server(root) as base:
        yield root, base


@pytest.fixture(scope="module")
def publish(server):
    root, base = server

    def publish(name, lines, **options):
        result = render(lines, Options(**options))
        assert result.ok
        (root / f"{name}.svg").write_bytes(result.svg)
        return base + f"{name}.svg"
    return publish


class Page:
    """A fresh context and page that records dialogs and script errors.

    A prompt is answered with the next of `answers`; every dialog is recorded.
    """

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.context.new_page()
        self.dialogs, self.errors, self.answers = [], [], []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)

    def _dialog(self, dialog):
        self.dialogs.append((dialog.type, dialog.message))
        if dialog.type == "prompt" and self.answers:
            dialog.accept(self.answers.pop(0))
        else:
            dialog.dismiss()

    def _console(self, message):
        # The browser's own favicon request 404s; that is not the SVG's doing.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(message.text)

    def __getattr__(self, name):
        return getattr(self.page, name)

    def frames(self):
        """name -> the frame's current state (names are unique in our inputs)."""
        states = self.page.evaluate("""() => Array.from(
            document.getElementById('frames').children, g => {
              const r = g.querySelector('rect'), t = g.querySelector('text');
              return {title: g.querySelector('title').textContent,
                      x: r.getAttribute('x'), y: r.getAttribute('y'), width: r.getAttribute('width'),
                      fill: r.getAttribute('fill'), label: t.textContent,
                      labelElements: t.childElementCount,
                      cls: g.getAttribute('class') || '',
                      shown: getComputedStyle(g).display !== 'none'};
            })""")
        return {re.sub(r" \(\S+ .*, \S+%\)$", "", s["title"]): s for s in states}

    def center(self, name):
        """Viewport coordinates of the middle of the frame `name`'s rect."""
        box = self.page.evaluate("""(name) => {
            for (const g of document.getElementById('frames').children) {
              if (g.querySelector('title').textContent.startsWith(name + ' (')) {
                const r = g.querySelector('rect').getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];
              }
            }
            return null;
          }""", name)
        assert box, name
        return box

    def click_frame(self, name):
        self.page.mouse.click(*self.center(name))

    def text(self, element_id):
        return self.page.evaluate("(id) => document.getElementById(id).textContent", element_id)

    def shown(self, element_id):
        return self.page.evaluate(
            "(id) => getComputedStyle(document.getElementById(id)).display !== 'none'", element_id)

    def query(self):
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.page.url).query)


@pytest.fixture
def page(browser):
    p = Page(browser)
    yield p
    errors = list(p.errors)
    p.context.close()
    assert not errors, errors


# ---- tests -------------------------------------------------------------------

def test_hover_shows_details_and_leaving_clears_them(page, publish):
    page.goto(publish("hover", FOLDED))
    assert page.text("details").strip() == ""
    page.mouse.move(*page.center("compute"))
    assert page.text("details") == "Function: compute (60 samples, 50.85%)"
    page.mouse.move(*page.center("all"))
    assert page.text("details") == "Function: all (118 samples, 100%)"
    page.mouse.move(1, 1)
    assert page.text("details").strip() == ""


def test_click_zooms_into_the_subtree_and_reset_restores(page, publish):
    page.goto(publish("zoom", FOLDED))
    before = page.frames()
    assert not page.shown("unzoom")

    page.click_frame("run")
    after = page.frames()
    assert page.shown("unzoom")
    assert float(after["run"]["x"]) == pytest.approx(10, abs=0.5)
    assert float(after["run"]["width"]) == pytest.approx(FULL, abs=0.5)
    # The subtree scales with it: run is 75 samples, compute 60, inner 40, io 15;
        # compute's own 20 samples come before inner, as in flamegraph.pl.
    for name, samples, offset in (("compute", 60, 0), ("inner", 40, 20), ("io", 15, 60)):
        assert float(after[name]["width"]) == pytest.approx(FULL * samples / 75, abs=0.5)
        assert float(after[name]["x"]) == pytest.approx(10 + FULL * offset / 75, abs=0.5)
        assert after[name]["shown"] and "parent" not in after[name]["cls"]
    # Ancestors span the width, dimmed; everything else is hidden.
    for name in ("all", "main"):
        assert after[name]["shown"] and "parent" in after[name]["cls"]
        assert float(after[name]["width"]) == pytest.approx(FULL, abs=0.5)
    for name in ("init", "parse", "load", "idle", "other", "work"):
        assert not after[name]["shown"], name
    # Labels are re-fitted: io was 150 px wide ("io"), still fits; none is cut wrongly.
    assert after["compute"]["label"] == "compute" and after["io"]["label"] == "io"

    page.click("#unzoom")
    assert page.frames() == before
    assert not page.shown("unzoom")

    # Clicking the root, or Escape, resets as well.
    page.click_frame("init")
    assert page.frames()["parse"]["width"] != before["parse"]["width"]
    page.click_frame("all")
    assert page.frames() == before
    page.click_frame("init")
    page.keyboard.press("Escape")
    assert page.frames() == before and not page.shown("unzoom")


def test_zoom_refits_labels(page, publish):
    lines = ["root;a_rather_long_function_name 1", "root;tiny_frame_with_long_name 400"]
    page.goto(publish("labels", lines))
    before = page.frames()
    assert before["a_rather_long_function_name"]["label"] == ""  # 2.9 px wide
    page.click_frame("tiny_frame_with_long_name")
    page.click_frame("root")  # an ancestor: zoom out to it
    page.click("#unzoom")
    assert page.frames() == before
    # Zoomed into the 2.9 px frame it gets the whole width and its full name.
    page.evaluate("""() => {
        const g = Array.from(document.getElementById('frames').children)
          .find(g => g.querySelector('title').textContent.startsWith('a_rather'));
        g.querySelector('rect').dispatchEvent(new MouseEvent('click', {bubbles: true}));
      }""")
    assert page.frames()["a_rather_long_function_name"]["label"] == "a_rather_long_function_name"
    assert float(page.frames()["a_rather_long_function_name"]["width"]) == pytest.approx(FULL, abs=0.5)
    assert page.frames()["tiny_frame_with_long_name"]["shown"] is False


def test_zoom_in_an_icicle_graph_keeps_the_subtree_below(page, publish):
    page.goto(publish("icicle", FOLDED, inverted=True))
    page.click_frame("run")
    after = page.frames()
    assert float(after["inner"]["width"]) == pytest.approx(FULL * 40 / 75, abs=0.5)
    assert after["inner"]["shown"] and "parent" in after["main"]["cls"]
    assert not after["init"]["shown"]


def test_search_highlights_and_reports_the_matched_share(page, publish):
    page.goto(publish("search", FOLDED))
    before = page.frames()
    page.answers.append("compute|inner")
    page.click("#search")
    assert page.dialogs and page.dialogs[-1][0] == "prompt"
    after = page.frames()
    for name, state in after.items():
        expected = SEARCH_COLOR if name in ("compute", "inner") else before[name]["fill"]
        assert state["fill"] == expected, name
    # inner is nested in compute: counted once.
    assert page.text("matched") == expected_matched(FOLDED, "compute|inner") == "Matched: 50.85%"
    assert page.text("search") == "Reset Search"

    page.click("#search")  # a search is active: reset it
    assert page.frames() == before
    assert page.text("matched").strip() == "" and page.text("search") == "Search"

    # Ctrl-F prompts too; several separate and nested matches.
    page.answers.append("^i")
    page.keyboard.press("Control+f")
    assert page.text("matched") == expected_matched(FOLDED, "^i") == "Matched: 66.10%"
    page.answers.append("^(main|run)$")
    page.keyboard.press("F3")
    assert page.text("matched") == expected_matched(FOLDED, "^(main|run)$")

    # An invalid regexp is reported, not thrown (the page fixture checks errors).
    page.answers.append("(unclosed")
    page.keyboard.press("Control+f")
    assert "invalid" in page.text("matched").lower()
    assert all(s["fill"] != SEARCH_COLOR for s in page.frames().values())


def test_ignore_case_toggle_reruns_the_search(page, publish):
    page.goto(publish("ic", FOLDED))
    page.answers.append("MAIN")
    page.click("#search")
    assert page.text("matched") == "Matched: 0.00%"
    page.click("#ignorecase")
    assert page.text("matched") == expected_matched(FOLDED, "MAIN", re.I) == "Matched: 83.05%"
    assert page.frames()["main"]["fill"] == SEARCH_COLOR
    page.keyboard.press("Control+i")
    assert page.text("matched") == "Matched: 0.00%"
    assert page.frames()["main"]["fill"] != SEARCH_COLOR


def test_url_keeps_zoom_and_search_and_restores_them(page, publish, browser):
    url = publish("url", FOLDED)
    page.goto(url)
    original = page.frames()
    page.click_frame("compute")
    page.answers.append("in(ner|it) & ?")
    page.click("#search")
    assert page.query() == {"x": [original["compute"]["x"]], "y": [original["compute"]["y"]],
                            "s": ["in(ner|it) & ?"]}
    assert "s=in%28ner%7Cit%29+%26+%3F" in page.url  # encoded, not raw
    shared = page.url
    zoomed = page.frames()

    # A second page opened on the shared link shows the same view.
    other = Page(browser)
    try:
        other.goto(shared)
        assert other.frames() == zoomed
        assert other.shown("unzoom")
        assert other.text("matched") == page.text("matched") == expected_matched(FOLDED, "in(ner|it) & ?")
        assert not other.errors
    finally:
        other.context.close()

    # A hand-made link: zoom to run by its rect's x and y, search for io.
    page.goto(url + "?" + urllib.parse.urlencode(
        {"x": original["run"]["x"], "y": original["run"]["y"], "s": "^io$"}))
    restored = page.frames()
    assert float(restored["run"]["width"]) == pytest.approx(FULL, abs=0.5)
    assert not restored["other"]["shown"]
    assert restored["io"]["fill"] == SEARCH_COLOR
    assert page.text("matched") == expected_matched(FOLDED, "^io$")

    # Resetting both removes them from the URL.
    page.click("#unzoom")
    page.click("#search")
    assert page.query() == {}
    assert page.frames() == original


def test_hostile_names_stay_data(page, publish):
    lines = [f"proc;{name} {i + 1}" for i, name in enumerate(HOSTILE)]
    countname = "s<a>m(p]]>les"
    page.goto(publish("hostile", lines, countname=countname, nametype="F<n>:"))
    page.wait_for_timeout(100)
    states = page.frames()
    for name in HOSTILE:
        assert name in states, name
        assert states[name]["title"].startswith(name + " (")
        assert countname in states[name]["title"]

    # Hover, zoom (labels rewritten by the script) and search every name.
    for name in HOSTILE:
        page.mouse.move(*page.center(name))
        assert page.text("details") == "F<n>: " + states[name]["title"]
        page.click_frame(name)
        zoomed = page.frames()[name]
        assert zoomed["label"] == name and zoomed["labelElements"] == 0
        page.keyboard.press("Escape")
    page.answers.append("alert|img|script")
    page.click("#search")
    assert page.text("matched") == expected_matched(lines, "alert|img|script")

    assert [d for d in page.dialogs if d[0] != "prompt"] == []
    elements = page.evaluate("""() => Array.from(document.querySelectorAll('*'),
        e => [e.namespaceURI, e.localName, Array.from(e.attributes, a => a.name)])""")
    allowed = {"svg", "defs", "linearGradient", "stop", "style", "script", "rect",
               "text", "g", "title", "desc", "a"}
    for namespace, tag, attributes in elements:
        assert namespace == SVG_NS and tag in allowed, (namespace, tag)
        assert tag == "svg" or not any(a.lower().startswith("on") for a in attributes), tag
    assert sum(1 for _, tag, _ in elements if tag == "script") == 1
