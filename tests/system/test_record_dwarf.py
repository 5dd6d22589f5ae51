"""`profiler record --call-graph dwarf|fp` on software built without frame
pointers: whole stacks, checked against the programs' own call structure and
against perf's `--call-graph dwarf` on the same workloads (issue 10).

Each workload is recorded once per mode by the profiler (and once by perf)
and the recordings are shared by the tests that read them.
"""
from __future__ import annotations

import collections
import dataclasses
import html
import math
import os
import re
import subprocess
import threading
import time
from typing import Iterable, Mapping

import pytest

import perf_oracle
from dwarf_workloads import Workload, dwarf_workloads, need  # noqa: F401
from sysutil import (REPO, bpf_ready, no_leftovers, parse_folded, profiler_cmd,  # noqa: F401
                     run_profiler)

pytestmark = pytest.mark.root

FREQUENCY = 999
SECONDS = 2  # each workload's running time (whole seconds: alarm(2))
# cpu-clock samples come only while the workload has a CPU: on a busy
# machine (2 CPUs shared with other test runs) far fewer than F x SECONDS.
# Shares are what is checked; this many samples make them meaningful.
MIN_SAMPLES = 300

# Frames above the program's own first frame: the C runtime's way into main
# (_start, __libc_start_main, __libc_start_call_main) or into a thread
# (clone3, start_thread). Names after Names(), which maps glibc's aliases
# (__libc_start_main_impl, __clone3, ...) to one of them.
ENTRY = re.compile(r"^(_start|_dl_start_user|__libc_start_main|__libc_start_call_main|"
                   r"(__)?clone3?|start_thread)$")
# Where every unwinder stops because the CFI says so (return address
# undefined): the first frame of a whole stack, root side.
OUTERMOST = frozenset({"_start", "clone3", "clone"})
BROKEN = re.compile(r"^\[(unknown|unmapped|truncated)\]")  # no object at all, or cut


def unnamed(frame: str) -> bool:
    """A frame without a function name: `module+0xOFFSET`, `[unknown]`,
    `[unmapped]+0x...`, `[truncated]`."""
    return bool(BROKEN.match(frame)) or bool(re.search(r"\+0x[0-9a-f]+$", frame))


# ------------------------------------------------------------- recordings

@dataclasses.dataclass(frozen=True)
class Ours:
    stacks: collections.Counter  # root-first user frames of the workload's comm -> count
    other: int                   # samples of other processes (none expected)
    stderr: str

    @property
    def total(self) -> int:
        return sum(self.stacks.values())


_OURS: dict[tuple[str, str], Ours] = {}
_PERF: dict[str, list[perf_oracle.Sample]] = {}
_LIBC: list[str] = []


def libc_path() -> str:
    """The C library the workloads run with (for the alias table)."""
    if not _LIBC:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libc.so" in line}
        _LIBC.extend(sorted(paths))
    return _LIBC[0] if _LIBC else ""


def _ours_from(out: str, w: Workload, stderr: str) -> Ours:
    """A folded output: the workload's stacks (without the process frame)
    and how many samples were another process's."""
    with open(out) as f:
        rows = parse_folded(f.read())
    stacks = collections.Counter()
    other = 0
    for frames, n in rows:
        if frames[0] == w.comm:
            stacks[tuple(frames[1:])] += n
        else:
            other += n
    return Ours(stacks, other, stderr)


def record_ours(w: Workload, tmp_dir, mode: str = "dwarf") -> Ours:
    key = (w.name, mode)
    if key not in _OURS:
        out = os.path.join(str(tmp_dir), f"{w.name}-{mode}.folded")
        # --no-inline: perf script names functions only (no --inline), so
        # the chains are compared function by function
        run = run_profiler("record", "--call-graph", mode, "-U", "-F", str(FREQUENCY),
                           "--no-inline", "-o", out, "--", *w.command(SECONDS), timeout=120)
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
        _OURS[key] = _ours_from(out, w, run.stderr)
    return _OURS[key]


_BOTH: dict = {}


def record_both(w: Workload, tmp_dir) -> tuple[Ours, list[perf_oracle.Sample]]:
    """Ours and perf on the same running process at the same time: both see
    the same run, so their shares differ only by sampling (two separate runs
    of an interpreter differ by more: where its time goes moves from run to
    run, and each profiler's own cost shifts it)."""
    if w.name not in _BOTH:
        perf_oracle.require_perf()
        proc = subprocess.Popen(w.command(SECONDS + 3))
        try:
            time.sleep(0.5)  # past exec and ld.so: both see the steady state
            data = os.path.join(str(tmp_dir), f"{w.name}.both.perf.data")
            out = os.path.join(str(tmp_dir), f"{w.name}-both.folded")
            theirs: list = []
            perf = threading.Thread(target=lambda: theirs.append(perf_oracle.perf_profile(
                data, pid=proc.pid, duration=SECONDS, frequency=FREQUENCY)))
            perf.start()
            run = run_profiler("record", "--call-graph", "dwarf", "-U", "-F", str(FREQUENCY),
                               "--no-inline", "-d", str(SECONDS), "-p", str(proc.pid), "-o",
                               out, timeout=120)
            perf.join(300)
        finally:
            proc.kill()
            proc.wait()
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        assert theirs, "perf record did not finish"
        _BOTH[w.name] = (_ours_from(out, w, run.stderr),
                         [s for s in theirs[0] if s.comm == w.comm])
    return _BOTH[w.name]


def record_perf(w: Workload, tmp_dir) -> list[perf_oracle.Sample]:
    if w.name not in _PERF:
        perf_oracle.require_perf()
        data = os.path.join(str(tmp_dir), f"{w.name}.perf.data")
        samples = perf_oracle.perf_profile(data, command=w.command(SECONDS),
                                           frequency=FREQUENCY)
        _PERF[w.name] = [s for s in samples if s.comm == w.comm]
    return _PERF[w.name]


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def names(dwarf_workloads):
    return perf_oracle.Names([libc_path(), *(w.argv[0] for w in dwarf_workloads.values())])


# ----------------------------------------------------------- whole stacks

@dataclasses.dataclass(frozen=True)
class Shape:
    """What a whole stack of a workload looks like, root first: entry
    frames only, from the outermost one (_start, clone3: perf's stacks all
    begin there), then one of `anchors` (main, or the thread start), and each
    of the program's own functions right below the one that calls it
    (`parents`), nothing unnamed down to the deepest own frame (`through`
    when given). Below it, library code (libstdc++'s and libgcc_s's
    exception machinery, stripped) may hold unnamed frames when
    `library_tail`, never a broken one."""
    anchors: frozenset
    parents: Mapping[str, str]
    through: str | None = None
    library_tail: bool = False

    def whole(self, frames: Iterable[str], names: perf_oracle.Names) -> bool:
        raw = list(frames)
        seq = [names(f) for f in raw]
        anchor = next((i for i, n in enumerate(seq) if n in self.anchors), None)
        if anchor is None or not all(ENTRY.match(n) for n in seq[:anchor]):
            return False
        if seq[0] not in OUTERMOST:
            return False
        for i, n in enumerate(seq):
            if n in self.parents and (i == 0 or seq[i - 1] != self.parents[n]):
                return False
        if self.through is not None:
            if self.through not in seq[anchor:]:
                return False
            deepest = len(seq) - 1 - seq[::-1].index(self.through)
        else:
            deepest = max(i for i, n in enumerate(seq) if n in self.parents or i == anchor)
        if any(unnamed(f) for f in raw[:deepest + 1]):
            return False
        tail = raw[deepest + 1:]
        if any(BROKEN.match(f) for f in tail):
            return False
        return self.library_tail or not any(unnamed(f) for f in tail)


SHAPES = {
    "omit_chain": Shape(frozenset({"main"}), {"level_one": "main", "level_two": "level_one",
                                              "level_three": "level_two"}),
    "rust_chain": Shape(frozenset({"main"}), {
        "rust_chain::level_one": "rust_chain::main",
        "rust_chain::level_two": "rust_chain::level_one",
        "rust_chain::level_three": "rust_chain::level_two"}),
    "threads_exc": Shape(frozenset({"main", "start_thread"}), {
        "thread_main": "start_thread", "stage_a": "thread_main", "stage_b": "stage_a",
        "crunch": "stage_b", "thrower": "stage_b"}, library_tail=True),
    # Python 3.11 runs Python-to-Python calls inside one _PyEval_EvalFrameDefault;
    # pyenv's python3.11 tail-calls Py_BytesMain from main, so main is not on
    # the stack (perf agrees), Debian's calls it.
    "py_loop": Shape(frozenset({"main", "Py_BytesMain"}), {},
                     through="_PyEval_EvalFrameDefault", library_tail=True),
    "sig_handler": Shape(frozenset({"main"}), {
        "work_loop": "main", "__restore_rt": "work_loop", "on_sigprof": "__restore_rt",
        "burn": "on_sigprof"}),
}
# The workload does what it says: (its hot function, the least share of
# samples that holds it).
LEAVES = {"omit_chain": ("level_three", 0.4), "rust_chain": ("rust_chain::level_three", 0.4),
          "threads_exc": ("crunch", 0.1), "py_loop": ("_PyEval_EvalFrameDefault", 0.8)}


def share_whole(stacks: collections.Counter, shape: Shape, names) -> float:
    total = sum(stacks.values())
    return sum(n for f, n in stacks.items() if shape.whole(f, names)) / total if total else 0.0


def worst(stacks: collections.Counter, shape: Shape, names, k: int = 6) -> list:
    return [(";".join(f), n) for f, n in stacks.most_common() if not shape.whole(f, names)][:k]


def _check_whole(w: Workload, ours: Ours, names, threshold: float) -> float:
    assert ours.total >= MIN_SAMPLES, (ours.total, ours.stderr)
    assert ours.other <= 0.01 * ours.total, ours.other
    shape = SHAPES[w.name]
    whole = share_whole(ours.stacks, shape, names)
    assert whole >= threshold, (f"{whole:.1%} whole", worst(ours.stacks, shape, names),
                                ours.stderr)
    leaf, least = LEAVES[w.name]
    in_leaf = sum(n for f, n in ours.stacks.items() if leaf in map(names, f)) / ours.total
    assert in_leaf >= least, (leaf, in_leaf, ours.stacks.most_common(5))
    print(f"{w.name}: {whole:.1%} of {ours.total} samples whole, {in_leaf:.1%} in {leaf}")
    return whole


def test_python_loop_under_the_machines_python_reaches_py_bytes_main(
        bpf_ready, dwarf_workloads, rec_dir, names, no_leftovers):
    """pyenv's libpython3.11 has no frame pointers: a frame-pointer walk from
    _PyEval_EvalFrameDefault reads garbage (0% reach main); CFI gets them all."""
    w = need(dwarf_workloads, "py_loop")
    _check_whole(w, record_ours(w, rec_dir), names, 0.90)


@pytest.mark.parametrize("name", ["omit_chain", "threads_exc", "rust_chain"])
def test_compiled_code_without_frame_pointers_has_whole_chains(
        bpf_ready, dwarf_workloads, rec_dir, names, name):
    w = need(dwarf_workloads, name)
    ours = record_ours(w, rec_dir)
    _check_whole(w, ours, names, 0.95)
    if name == "threads_exc":
        # Every worker thread is seen, each from its own start, and the
        # exception machinery (__cxa_throw and below) is part of the picture.
        seq = {f: [names(x) for x in f] for f in ours.stacks}
        throwing = sum(n for f, n in ours.stacks.items() if "__cxa_throw" in seq[f])
        assert throwing >= 0.03 * ours.total, ours.stacks.most_common(10)
        assert sum(n for f, n in ours.stacks.items() if "start_thread" in seq[f]) \
            >= 0.95 * ours.total


def test_fp_mode_puts_back_the_caller_of_a_frameless_leaf(bpf_ready, dwarf_workloads,
                                                          rec_dir, names, no_leftovers):
    w = need(dwarf_workloads, "frameless_leaf")
    # The workload is what it claims (binutils): caller keeps a frame
    # pointer, the leaf sets up no frame at all, so [sp] is its return address.
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", w.argv[0]],
                         capture_output=True, text=True, check=True).stdout
    body = {m.group(1): m.group(2) for m in
            re.finditer(r"^[0-9a-f]+ <(\w+)>:\n(.*?)(?=\n\n)", asm, re.S | re.M)}
    assert "push   %rbp" in body["caller"] and "mov    %rsp,%rbp" in body["caller"]
    assert not re.search(r"\b(push|sub +\$0x[0-9a-f]+,%rsp)|%rbp", body["leaf"]), body["leaf"]

    ours = record_ours(w, rec_dir, mode="fp")
    seq = {f: [names(x) for x in f] for f in ours.stacks}
    in_leaf = {f: n for f, n in ours.stacks.items() if seq[f] and seq[f][-1] == "leaf"}
    leaf_total = sum(in_leaf.values())
    assert leaf_total >= 0.8 * ours.total, ours.stacks.most_common(5)
    with_caller = sum(n for f, n in in_leaf.items() if seq[f][-3:] == ["main", "caller", "leaf"])
    print(f"frameless_leaf (fp): {leaf_total}/{ours.total} samples in leaf, "
          f"{with_caller / leaf_total:.1%} of them with main;caller above")
    assert with_caller >= 0.99 * leaf_total, (
        f"{with_caller}/{leaf_total}", [(";".join(f), n) for f, n in in_leaf.items()
                                        if seq[f][-3:] != ["main", "caller", "leaf"]][:5])
    # No frame invented: where the frame is set up (in caller itself) the
    # walk is right as it is, and nothing is inserted.
    in_caller = {f: n for f, n in ours.stacks.items() if seq[f] and seq[f][-1] == "caller"}
    assert all(seq[f][-2:] == ["main", "caller"] for f in in_caller), in_caller
    assert not any(s.count("caller") > 1 or s.count("main") > 1 for s in seq.values())


@pytest.mark.parametrize("name", ["omit_chain", "threads_exc", "rust_chain", "py_loop"])
def test_function_chains_agree_with_perf_dwarf(bpf_ready, dwarf_workloads, rec_dir, names,
                                               name):
    """Agree, both recording the same process at once: every root-to-leaf
    chain holding >= 2% of the samples on one side is seen on the other, and
    its two shares differ by no more than
    sampling explains (4 standard deviations of the difference of two
    proportions, at least 3 points).

    Names are normalized the same way on both sides (perf_oracle.Names:
    symbol versions, C++ parameters, Rust hashes, glibc's aliases, unnamed
    frames as `module+?`), so that the unwinding is what is compared. perf's
    samples with a user frame it could not even map (`[unknown]` object:
    its unwinding went astray or ended in unmapped memory) are left out of
    its side: they are no reference, and it is said below how many."""
    w = need(dwarf_workloads, name)
    ours, samples = record_both(w, rec_dir)
    kept, dropped = perf_oracle.usable_samples(samples)
    assert len(samples) >= MIN_SAMPLES, len(samples)
    assert dropped <= 0.05 * len(samples), f"perf could not unwind {dropped}/{len(samples)}"
    objects = perf_oracle.Names([libc_path(), w.argv[0],
                                 *perf_oracle.user_objects(samples)])
    theirs = collections.Counter(
        tuple(objects.perf_frame(f) for f in s.frames if not f.kernel) for s in kept)
    mine = collections.Counter()
    for frames, n in ours.stacks.items():
        mine[tuple(objects(f) for f in frames)] += n
    t_ours, t_perf = sum(mine.values()), sum(theirs.values())
    share_ours = {c: n / t_ours for c, n in mine.items()}
    share_perf = {c: n / t_perf for c, n in theirs.items()}
    major = {c for c, s in share_ours.items() if s >= 0.02} | \
        {c for c, s in share_perf.items() if s >= 0.02}
    assert major, (mine.most_common(3), theirs.most_common(3))
    report = "\n".join(f"{share_ours.get(c, 0):6.1%} {share_perf.get(c, 0):6.1%}  {';'.join(c)}"
                       for c in sorted(major, key=lambda c: -share_ours.get(c, 0)))
    header = f"ours {t_ours} samples, perf {t_perf} (+{dropped} it could not unwind)\n"
    print(f"{w.name}: {header}{report}")
    only_ours = [c for c in major if c not in share_perf]
    only_perf = [c for c in major if c not in share_ours]
    assert not only_ours and not only_perf, header + report
    def tolerance(c) -> float:
        p = (mine[c] + theirs[c]) / (t_ours + t_perf)
        return max(0.03, 4 * math.sqrt(p * (1 - p) * (1 / t_ours + 1 / t_perf)))

    apart = [c for c in major if abs(share_ours[c] - share_perf[c]) > tolerance(c)]
    assert not apart, header + report


def test_signal_handler_samples_show_the_interrupted_code_below(bpf_ready, dwarf_workloads,
                                                                rec_dir, names):
    """main;work_loop;__restore_rt;on_sigprof;burn: the unwinder crosses the
    signal frame (glibc's __restore_rt, CFI with the `S` augmentation and
    expressions reading the saved registers from the ucontext)."""
    w = need(dwarf_workloads, "sig_handler")
    ours = record_ours(w, rec_dir)
    assert ours.total >= MIN_SAMPLES, ours.stderr
    seq = {f: [names(x) for x in f] for f in ours.stacks}
    handler = {f: n for f, n in ours.stacks.items() if "on_sigprof" in seq[f]}
    in_handler = sum(handler.values())
    assert in_handler >= 0.05 * ours.total, ours.stacks.most_common(5)
    expected = ["main", "work_loop", "__restore_rt", "on_sigprof"]
    shape = SHAPES[w.name]

    def through(f):
        s = seq[f]
        i = s.index("on_sigprof")
        return s[i - 3:i + 1] == expected and shape.whole(f, names)

    good = sum(n for f, n in handler.items() if through(f))
    print(f"sig_handler: {in_handler}/{ours.total} samples in the handler, "
          f"{good / in_handler:.1%} of them through {';'.join(expected)}")
    assert good >= 0.95 * in_handler, (f"{good}/{in_handler}",
                                       [(";".join(f), n) for f, n in handler.items()
                                        if not through(f)][:5])
    # And outside the handler, the interrupted code alone, whole.
    assert share_whole(ours.stacks, shape, names) >= 0.95, worst(ours.stacks, shape, names)


@pytest.mark.parametrize("name", ["omit_chain", "threads_exc", "rust_chain", "py_loop",
                                  "sig_handler"])
def test_no_stack_is_cut_silently(bpf_ready, dwarf_workloads, rec_dir, names, name):
    """A dwarf-mode stack either reaches the outermost frame (_start,
    clone3; while the dynamic loader runs, its own `_start`, an untyped
    assembly symbol) or says where it was cut ([truncated], counted in the
    summary). A handful of samples may have no user stack at all (taken
    during execve; counted too)."""
    w = need(dwarf_workloads, name)
    ours = record_ours(w, rec_dir)
    cut = collections.Counter()
    for frames, n in ours.stacks.items():
        root = names(frames[0])
        if root in OUTERMOST or frames[0] == "[truncated]" or len(frames) == 1:
            continue
        cut[";".join(frames)] += n
    print(f"{name}: {sum(cut.values())}/{ours.total} samples cut short without a mark")
    assert sum(cut.values()) <= 0.005 * ours.total, (cut.most_common(5), ours.stderr)


# ------------------------------------------------------------------ demo

_SVG_FRAME = re.compile(r'<g><title>(.*?) \(([\d,]+) samples?, [\d.]+%\)</title><rect ([^>]*)/>')
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def svg_frames(svg: str) -> list[tuple[str, int, float, float, float]]:
    """(name, samples, x, width, y) of each frame the flame graph draws."""
    frames = []
    for m in _SVG_FRAME.finditer(svg):
        attrs = dict(_ATTR.findall(m.group(3)))
        frames.append((html.unescape(m.group(1)), int(m.group(2).replace(",", "")),
                       float(attrs["x"]), float(attrs["width"]), float(attrs["y"])))
    return frames


def test_make_demo_hangs_its_samples_under_main(bpf_ready, tmp_path, no_leftovers):
    """`make demo` (python -m profiler.cli.demo): its workload sorts with libc's
    qsort; the comparison callback and qsort's own merge sort (libc, no frame
    pointers) must hang under main, not under the process name."""
    run = subprocess.run([*profiler_cmd()[:2], "profiler.cli.demo"],
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert run.returncode == 0, run.stderr
    assert "cannot profile live" not in run.stderr and "Traceback" not in run.stderr
    frames = svg_frames((tmp_path / "demo-flamegraph.svg").read_text())
    total = next(n for name, n, *_ in frames if name == "all")
    mains = [f for f in frames if f[0] == "main"]
    under_main = sum(f[1] for f in mains)
    print(f"demo: {under_main}/{total} = {under_main / total:.1%} under main")
    assert under_main >= 0.95 * total, (under_main, total, run.stderr)

    def below_main(frame) -> bool:  # drawn above a main frame, within its width
        _, _, x, width, y = frame
        return any(my > y and mx - 0.01 <= x and x + width <= mx + mw + 0.01
                   for _, _, mx, mw, my in mains)

    cmp_frames = [f for f in frames if f[0] == "cmp"]
    cmp_total = sum(f[1] for f in cmp_frames)
    assert cmp_total > 0.05 * total, cmp_total
    cmp_under = sum(f[1] for f in cmp_frames if below_main(f))
    print(f"demo: cmp {cmp_under}/{cmp_total} under main")
    assert cmp_under >= 0.95 * cmp_total
