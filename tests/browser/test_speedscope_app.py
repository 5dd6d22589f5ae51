"""Our speedscope files in speedscope's own app, in a real headless Chromium.

The app is the one the npm package `speedscope` ships (dist/release/, put in
.npm/ by scripts/install-speedscope.sh). It is served with the profiles over
HTTP on 127.0.0.1 and loads them by its `#profileURL=` hash parameter; what it
shows (the document title, the profile name in the toolbar, the profile
chooser with each profile's total weight, and the Sandwich view's table of
frames with their total and self weights) is read from the DOM, not the
canvas. The app's own Export button writes the profile back out as an
evented profile: a second producer our reader is checked against.
"""
import collections
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from browserutil import chromium, static_server
from conftest import ROOT, require
from profiler.export import speedscope
from profiler.model.profile import (FrameKind, Function, Line, Location, Meta, Profile, Sample,
                                    ValueType)

pytestmark = pytest.mark.browser

APP = ROOT / ".npm" / "node_modules" / "speedscope"
PY_SPY = ROOT / "tests" / "data" / "speedscope" / "py-spy.speedscope.json"
MS = 1_000_000


# ---- profiles -------------------------------------------------------------------

def build(samples, unit="nanoseconds", title="CPU profile of the test"):
    """A Profile from (comm, pid, tid, weight, frames leaf first); a frame is
    "name", "name_[k]", "name_[j]", or "outer+inner" (an inline chain)."""
    functions, locations, out = {}, {}, []
    by_name, by_frame = {}, {}

    def function(name):
        if name not in by_name:
            ident = by_name[name] = len(functions) + 1
            functions[ident] = Function(id=ident, name=name, filename=f"{name}.c",
                                        start_line=ident)
        return by_name[name]

    def location(frame):
        if frame in by_frame:
            return by_frame[frame]
        kind = FrameKind.USER
        text = frame
        for k, suffix in ((FrameKind.KERNEL, "_[k]"), (FrameKind.JIT, "_[j]")):
            if text.endswith(suffix):
                kind, text = k, text[:-len(suffix)]
        ident = by_frame[frame] = len(locations) + 1
        lines = tuple(Line(function_id=function(n), line=10 * ident)
                      for n in reversed(text.split("+")))  # innermost first
        locations[ident] = Location(id=ident, address=0x1000 * ident, lines=lines, kind=kind)
        return ident

    for comm, pid, tid, weight, frames in samples:
        out.append(Sample(locations=tuple(location(f) for f in frames), values=(weight,),
                          pid=pid, tid=tid, comm=comm))
    value_type = ValueType("cpu", "nanoseconds") if unit == "nanoseconds" else \
        ValueType("samples", "count")
    return Profile(sample_types=(value_type,), samples=tuple(out), locations=locations,
                   functions=functions, mappings={}, meta=Meta(title=title))


TWO_PROCESSES = build([
    ("app", 100, 100, 70 * MS, ["compute", "main"]),
    ("app", 100, 101, 20 * MS, ["outer+inner", "main"]),
    ("app", 100, 100, 30 * MS, ["vfs_read_[k]", "do_syscall_64_[k]", "read", "main"]),
    ("java vm", 200, 201, 40 * MS, ["Interp_run_[j]", "main"]),
])


def expected_rows(document, profile_index):
    """What the Sandwich table should hold, from the file alone: for each frame
    used by the profile, (name, total, self) in the profile's unit; a frame
    counts once per stack."""
    frames = document["shared"]["frames"]
    p = document["profiles"][profile_index]
    total, self_ = collections.Counter(), collections.Counter()
    for stack, weight in zip(p["samples"], p["weights"]):
        for i in set(stack):
            total[i] += weight
        self_[stack[-1]] += weight
    return sorted((frames[i]["name"], total[i], self_[i]) for i in total)


def shown(value, unit):
    """A weight as speedscope's value formatters print it (the ranges used here)."""
    if unit == "none":
        return f"{value:,}"  # toLocaleString() in en-US
    assert unit == "nanoseconds"
    if value >= 1e9:
        return f"{value / 1e9:.2f}s"
    if value >= 1e6:
        return f"{value / 1e6:.2f}ms"
    if value >= 1e3:
        return f"{value / 1e3:.2f}µs"
    return f"{value:.2f}ns"


# ---- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(directory, base URL): speedscope's app under app/, profiles beside it."""
    index = APP / "dist" / "release" / "index.html"
    require(index.exists(), f"speedscope's app is not installed ({index}): "
                            "run scripts/install-speedscope.sh")
    root = tmp_path_factory.mktemp("speedscope")
    shutil.copytree(index.parent, root / "app")
    with static_server(root) as base:
        yield root, base


class App:
    """speedscope in a fresh context and page; records script errors and any
    request that leaves the loopback server."""

    def __init__(self, browser, server):
        self.root, self.base = server
        self.context = browser.new_context(viewport={"width": 1300, "height": 900},
                                           locale="en-US", accept_downloads=True)
        self.page = self.context.new_page()
        self.errors, self.foreign = [], []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        self.page.on("request", self._request)

    def _console(self, message):
        if message.type == "error" and not message.location.get("url", "").endswith("favicon.ico"):
            self.errors.append(message.text)

    def _request(self, request):
        if not request.url.startswith(self.base):
            self.foreign.append(request.url)

    def open(self, name, data):
        (self.root / name).write_bytes(data)
        self.page.goto(f"{self.base}app/index.html#profileURL={self.base}{name}")
        self.page.wait_for_function("document.title.endsWith(' - speedscope')", timeout=20_000)
        assert not self.errors, self.errors

    def title(self):
        return self.page.title()

    def profile_name(self):
        """The toolbar's middle: the active profile's name (and "(i/n)"). The
        toolbar is the parent of the view tabs; its last child holds Export."""
        return self.page.evaluate("""() => {
            const tabs = Array.from(document.querySelectorAll('div')).find(d =>
                d.textContent.includes('Time Order') && d.textContent.endsWith('Sandwich'));
            const toolbar = tabs.parentElement;
            return Array.from(toolbar.childNodes)
              .filter(n => n !== tabs && n !== toolbar.lastElementChild)
              .map(n => n.nodeType === Node.TEXT_NODE ? n.textContent : n.innerText)
              .join('').trim().split('\\n')[0];  // below it: the chooser, when open
          }""")

    def profile_list(self):
        """The profile chooser, shown by hovering the name: (index, name, weight) rows."""
        self.page.get_by_text("(1/", exact=False).first.hover()
        self.page.wait_for_function("document.querySelectorAll('tr[title]').length > 0")
        return self.page.evaluate("""() => Array.from(document.querySelectorAll('tr[title]'),
            tr => Array.from(tr.cells, td => td.textContent.trim()))""")

    def choose_profile(self, name):
        self.page.get_by_text("(1/", exact=False).first.hover()
        self.page.locator(f'tr[title="{name}"]').dispatch_event("mouseup")
        self.page.mouse.move(1, 450)  # off the toolbar: the chooser closes
        self.page.wait_for_function(
            f"() => document.title && document.body.innerText.includes({json.dumps(name)})")

    def sandwich(self):
        """The Sandwich view's table: (name, total, self) per row, as shown,
        the weights without their percentages (the rows with a title are the
        profile chooser's)."""
        self.page.get_by_text("Sandwich").click()
        self.page.wait_for_function(
            "() => Array.from(document.querySelectorAll('th')).some(th => "
            "th.textContent.includes('Symbol Name'))")
        # The table's rows come a frame after its header: the list measures its
        # viewport once mounted and only then renders the rows that fit.
        data_rows = """() => Array.from(document.querySelectorAll('tr:not([title])'))
            .filter(tr => tr.cells.length === 3 && tr.querySelector('td'))"""
        self.page.wait_for_function(f"({data_rows})().length > 0", timeout=20_000)
        rows = self.page.evaluate(f"""() => ({data_rows})()
            .map(tr => Array.from(tr.cells, td => td.textContent.trim()))""")
        return sorted((name, total.rsplit(" (", 1)[0], self_.rsplit(" (", 1)[0])
                      for total, self_, name in rows)

    def export(self):
        """The app's Export button: the file speedscope itself writes."""
        with self.page.expect_download() as download:
            self.page.get_by_text("Export").click()
        return pathlib.Path(download.value.path()).read_bytes()

    def close(self):
        errors, foreign = list(self.errors), list(self.foreign)
        self.context.close()
        assert not errors, errors
        assert not foreign, foreign


@pytest.fixture
def app(browser, server):
    a = App(browser, server)
    yield a
    a.close()


def check_sandwich(app, document, index):
    unit = document["profiles"][index]["unit"]
    expected = sorted((name, shown(total, unit), shown(self_, unit))
                      for name, total, self_ in expected_rows(document, index))
    assert app.sandwich() == expected


# ---- tests -------------------------------------------------------------------

def test_the_app_shows_our_names_totals_and_frames(app):
    data = speedscope.write(TWO_PROCESSES)
    document = json.loads(data)
    app.open("two.speedscope.json", data)

    assert app.title() == "CPU profile of the test - speedscope"
    assert app.profile_name() == "app-100 (1/2)"
    assert app.profile_list() == [["1", "app-100", "120.00ms"], ["2", "java vm-200", "40.00ms"]]

    rows = app.sandwich()
    assert ("compute", "70.00ms", "70.00ms") in rows
    assert ("main", "120.00ms", "0.00ns") in rows
    assert ("vfs_read_[k]", "30.00ms", "30.00ms") in rows
    assert ("do_syscall_64_[k]", "30.00ms", "0.00ns") in rows
    assert ("outer", "20.00ms", "0.00ns") in rows and ("inner_[i]", "20.00ms", "20.00ms") in rows
    check_sandwich(app, document, 0)

    app.choose_profile("java vm-200")
    assert app.profile_name() == "java vm-200 (2/2)"
    rows = app.sandwich()
    assert ("Interp_run_[j]", "40.00ms", "40.00ms") in rows
    check_sandwich(app, document, 1)


def test_counts_per_thread(app):
    profile = build([("worker", 7, 7, 1234, ["spin", "main"]),
                     ("worker", 7, 8, 2500, ["wait_[k]", "poll", "main"]),
                     ("worker", 7, 8, 16, ["main"])], unit="count", title="threads")
    data = speedscope.write(profile, per_thread=True)
    document = json.loads(data)
    app.open("threads.speedscope.json", data)
    assert app.title() == "threads - speedscope"
    assert app.profile_name() == "worker-7/8 (1/2)"
    assert app.profile_list() == [["1", "worker-7/8", "2,516"], ["2", "worker-7/7", "1,234"]]
    rows = app.sandwich()
    assert ("main", "2,516", "16") in rows and ("wait_[k]", "2,500", "2,500") in rows
    check_sandwich(app, document, 0)
    app.choose_profile("worker-7/7")
    assert ("spin", "1,234", "1,234") in app.sandwich()


def test_what_the_app_exports_reads_back_the_same(app):
    """speedscope's Export writes evented profiles: our reader gives the
    stacks and weights we wrote."""
    data = speedscope.write(TWO_PROCESSES)
    app.open("export.speedscope.json", data)
    exported = app.export()
    document = json.loads(exported)
    assert document["exporter"].startswith("speedscope@")
    assert {p["type"] for p in document["profiles"]} == {"evented"}

    def stacks(profile):
        out = collections.Counter()
        for s in profile.samples:
            names = tuple(n for i in reversed(s.locations)
                          for n in profile.frame_names(profile.locations[i]))
            out[(s.comm, names)] += s.values[0]
        return out

    ours, theirs = speedscope.read(data), speedscope.read(exported)
    assert stacks(theirs) == stacks(ours)
    assert theirs.meta.title == ours.meta.title == "CPU profile of the test"


def _report(source, target, *extra):
    result = subprocess.run([sys.executable, "-m", "profiler", "report", str(source), "-q",
                             "-o", str(target), *extra], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return target.read_bytes()


def _cli_writes_speedscope():
    help_text = subprocess.run([sys.executable, "-m", "profiler", "report", "--help"],
                               capture_output=True, text=True, cwd=ROOT).stdout
    return "speedscope" in help_text


def test_a_real_py_spy_recording_through_report(app, tmp_path):
    """py-spy's file -> `profiler report` -> our speedscope file -> the app."""
    require(_cli_writes_speedscope(), "profiler report cannot write speedscope yet")
    data = _report(PY_SPY, tmp_path / "py-spy.speedscope.json")
    document = json.loads(data)
    source = json.loads(PY_SPY.read_bytes())
    app.open("py-spy.speedscope.json", data)
    (p,) = source["profiles"]
    assert app.profile_name() == p["name"]  # one profile: no "(1/1)"
    total = round(sum(p["weights"]) * 1e9)
    assert document["profiles"][0]["endValue"] == pytest.approx(total, abs=len(p["weights"]))
    rows = app.sandwich()
    assert ("<module>", shown(document["profiles"][0]["endValue"], "nanoseconds"), "0.00ns") in rows
    assert {"busy_a", "busy_b", "main"} <= {name for name, _, _ in rows}
    check_sandwich(app, document, 0)


@pytest.mark.root
def test_a_live_recording_through_report(app, tmp_path):
    """`profiler record` of a small C program, `report` to speedscope, the app."""
    require(os.geteuid() == 0, "needs root (BPF)")
    require(importlib.util.find_spec("bcc") is not None, "needs BCC (python3-bpfcc)")
    require(shutil.which("gcc") is not None, "needs gcc")
    require(_cli_writes_speedscope(), "profiler report cannot write speedscope yet")
    source = tmp_path / "spin.c"
    source.write_text("volatile unsigned long sink;\n"
                      "__attribute__((noinline)) void spin_leaf(void)"
                      " { for (int i = 0; i < 1000000; i++) sink += i; }\n"
                      "__attribute__((noinline)) void spin_middle(void) { spin_leaf(); }\n"
                      "int main(void) { for (int j = 0; j < 300; j++) spin_middle(); return 0; }\n")
    exe = tmp_path / "spin"
    subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-o", str(exe), str(source)],
                   check=True)
    raw = tmp_path / "spin.json"
    result = subprocess.run([sys.executable, "-m", "profiler", "record", "-q", "-F", "499",
                             "-o", str(raw), "--", str(exe)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    folded = subprocess.run([sys.executable, "-m", "profiler", "report", str(raw), "-q",
                             "--per-pid", "-o", "-"], capture_output=True, text=True, cwd=ROOT,
                            timeout=120, check=True).stdout.splitlines()
    data = _report(raw, tmp_path / "spin.speedscope.json")
    document = json.loads(data)
    app.open("spin.speedscope.json", data)

    # The oracle: the folded stacks of the same recording, per process.
    totals = collections.Counter()
    for line in folded:
        stack, count = line.rsplit(" ", 1)
        totals[stack.split(";", 1)[0]] += int(count)
    spin = next(name for name in totals if name.startswith(f"{exe.name}-"))
    names = [p["name"] for p in document["profiles"]]
    assert sorted(names) == sorted(totals)
    index = names.index(spin)
    if len(names) > 1:
        assert [str(index + 1), spin, shown(totals[spin], "none")] in app.profile_list()
        if index:
            app.choose_profile(spin)
    assert app.profile_name().split(" (")[0] == spin
    rows = app.sandwich()
    assert sum(int(self_.replace(",", "")) for _, _, self_ in rows) == totals[spin]
    assert {"main", "spin_middle", "spin_leaf"} <= {name for name, _, _ in rows}
    check_sandwich(app, document, index)
