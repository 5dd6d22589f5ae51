"""Benchmark `--call-graph dwarf`: its cost beside `fp`, BCC's profile tool and perf.

Run as root:  .venv/bin/python bench/unwind.py [--quick] [--rounds N]

One workload throughout: a C program built -O2 -fomit-frame-pointer that
calls main -> level1 -> level2 -> level3 -> (libc qsort with a callback, and
a loop of its own) (bench/workloads/unwind_chain.c), and the machine's real
python3 (pyenv's, not its shim) running a pure-Python loop. Prints one table:

  1. in-kernel ns/sample (kernel.bpf_stats_enabled=1, run_time_ns / run_cnt
     of each perf_event program) of ours with --call-graph fp, ours with
     --call-graph dwarf (16 KiB copies) and BCC's profile tool, all three
     attached at 999 Hz to the same process over the same seconds (counted
     only while all three are attached; median of the rounds). The C and the
     Python rows pin the workload to CPU 0 and sample CPU 0 only (-C 0) with
     the tools themselves on CPU 1, so every program run is a sample of the
     workload; the "both" row runs both processes unpinned on every CPU;
  2. bytes per sample through the copy ring: the lengths of the stack copies
     of a real dwarf recording (run in-process, profiler.record.recorder.record,
     with BpfSampler.on_copy wrapped to keep the copies), plus the 72-byte
     copy head and the ring's 8-byte record header, rounded to 8;
  3. user-space unwinding cost per sample of those copies, timed in-process:
     cold (a fresh CopyUnwinder with no disk cache: every object's CFI read
     and indexed), cold with the disk cache of CFI indexes, and warm (a
     second pass over the same copies); beside `perf script`'s wall time per
     sample on perf's own `perf record --call-graph dwarf -F 999` recording
     of the same two processes (default, --no-inline, and -F ip);
  4. peak RSS (wait4's ru_maxrss) of a 60 s dwarf run at 99 Hz and at
     999 Hz on both processes (two busy processes on the machine's CPUs),
     VmRSS of the profiler read every 5 s during each, and the raw profile's
     loss counters (lost_copy_ring_full, user_copy_failed).

--quick: short durations and one round, for a smoke run (about 2 minutes);
the full run takes about 7.
"""
from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import pathlib
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from record import BCC_PROFILE, OURS, perf_event_progs  # noqa: E402  (bench/record.py)
from benchenv import bench_env, watch_rss  # noqa: E402
from profiler.model.raw import TRUNCATED  # noqa: E402

WORKLOADS = ROOT / "bench" / "workloads"
FREQ = "999"
COPY_HEAD = 72  # struct copy_head (profiler/record/bpf/program.py COPY_HEAD)
RING_HEADER = 8  # BPF_RINGBUF_HDR_SZ
WARM_PASSES = 5
PY_LOOP = """\
import sys, time
def inner(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
def middle():
    return inner(2000) + 1
def outer():
    return middle() + 2
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    outer()
"""


# ---------------------------------------------------------------- workload

class Workload:
    """The two processes: the C chain and python3's loop."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.c_exe = str(tmp / "unwind_chain")
        subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-o", self.c_exe,
                        str(WORKLOADS / "unwind_chain.c")], check=True)
        out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        self.python = os.path.realpath(out)

    def command(self, which: str, seconds: float = 3600) -> list[str]:
        if which == "C":
            return [self.c_exe, str(seconds)]
        return [self.python, "-c", PY_LOOP, str(seconds)]

    def start(self, which: tuple[str, ...], cpu: int | None = None) -> list[subprocess.Popen]:
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        procs = [subprocess.Popen([*pin, *self.command(w)]) for w in which]
        time.sleep(0.3)
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"bench/unwind.py: workload {p.args} exited")
        return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def pids_of(procs) -> str:
    return ",".join(str(p.pid) for p in procs)


# ---------------------------------------------------------------- 1. in-kernel cost

def _programs_of(pid: int) -> set[int]:
    """Ids of the BPF programs process `pid` holds open (its fds' fdinfo):
    other profilers may be loading programs of the same name meanwhile."""
    ids = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return ids
    for fd in fds:
        try:
            m = re.search(r"^prog_id:\s+(\d+)", pathlib.Path(f"/proc/{pid}/fdinfo/{fd}").read_text(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return ids


def _wait_program(name: str, proc: subprocess.Popen) -> int:
    """The id of the perf_event program `name` that `proc` loaded, once it has run."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        mine = _programs_of(proc.pid)
        found = [i for i, (n, _ns, runs) in perf_event_progs().items()
                 if n == name and i in mine and runs]
        if len(found) == 1:
            return found[0]
        time.sleep(0.02)
    raise SystemExit(f"bench/unwind.py: {shlex.join(proc.args)} never ran its program "
                     f"(exit status {proc.poll()})")


def tool_commands(pids: str, cpu: int | None) -> list[tuple[str, str, list[str]]]:
    """(tool, program name, command) in the order they start: BCC's first
    (it compiles for seconds), then ours (loading the kept programs). They
    run until stopped."""
    pin = ["taskset", "-c", "1"] if cpu is not None else []
    only = ["-C", str(cpu)] if cpu is not None else []
    ours = [*pin, *OURS, "-q", "-F", FREQ, "-p", pids, *only, "-o", "/dev/null",
            "--format", "folded"]
    return [("bcc", "do_perf_event", [*pin, BCC_PROFILE, "-F", FREQ, "-f", "-p", pids, *only]),
            ("fp", "prof_sample", [*ours, "--call-graph", "fp"]),
            ("dwarf", "prof_sample", [*ours, "--call-graph", "dwarf"])]


def _run_ns(pids: str) -> int:
    """CPU time (ns) the workload processes have run (/proc/PID/schedstat)."""
    total = 0
    for pid in pids.split(","):
        try:
            total += int(pathlib.Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def cost_round(pids: str, cpu: int | None, env: dict, seconds: float) -> dict[str, tuple[float, int]]:
    """ns per run and runs of each tool's program over `seconds` while all
    three are attached to the same processes; "share": the workload's share
    of the sampled CPUs' time meanwhile (the other runs are samples of
    other processes, which the programs only filter out)."""
    procs: dict[str, subprocess.Popen] = {}
    ids: dict[str, int] = {}
    try:
        for tool, name, cmd in tool_commands(pids, cpu):
            procs[tool] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
            ids[tool] = _wait_program(name, procs[tool])
        time.sleep(0.5)  # past the first drain and the first process notices
        first, ran0, t0 = perf_event_progs(), _run_ns(pids), time.monotonic()
        time.sleep(seconds)
        last, ran1, t1 = perf_event_progs(), _run_ns(pids), time.monotonic()
        if not all(i in first and i in last for i in ids.values()) or \
                any(p.poll() is not None for p in procs.values()):
            raise SystemExit("bench/unwind.py: a tool ended during the measurement")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    out = {}
    for tool, i in ids.items():
        n = last[i][2] - first[i][2]
        out[tool] = ((last[i][1] - first[i][1]) / n if n else float("nan"), n)
    ncpu = 1 if cpu is not None else os.cpu_count()
    out["share"] = (min(1.0, (ran1 - ran0) / ((t1 - t0) * 1e9 * ncpu)), 0)
    return out


def median_cost(work: Workload, which: tuple[str, ...], cpu: int | None, env: dict,
                rounds: int, seconds: float) -> dict:
    procs = work.start(which, cpu)
    try:
        pids = pids_of(procs)
        for _tool, _name, cmd in tool_commands(pids, cpu)[1:]:  # compile and keep both programs
            subprocess.run([*cmd, "-d", "0.3"], env=env, cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
        results = [cost_round(pids, cpu, env, seconds) for _ in range(rounds)]
    finally:
        stop(procs)
    out = {tool: (statistics.median(r[tool][0] for r in results),
                  sum(r[tool][1] for r in results)) for tool in ("fp", "dwarf", "bcc")}
    out["rounds"] = [{t: r[t][0] for t in ("fp", "dwarf", "bcc")} for r in results]
    out["dwarf/bcc"] = statistics.median(r["dwarf"][0] / r["bcc"][0] for r in results)
    out["share"] = statistics.median(r["share"][0] for r in results)
    out["shares"] = [r["share"][0] for r in results]
    # every run charged to the workload's samples: an upper bound per sample
    out["bound"] = {t: statistics.median(r[t][0] / r["share"][0] for r in results)
                    for t in ("fp", "dwarf", "bcc")}
    return out


def filter_cost(work: Workload, env: dict, rounds: int, seconds: float) -> dict[str, float]:
    """ns per run of each tool when no run is a sample of its target (a
    sleeping process) while CPU 0 is busy with the C workload: what each
    sample of another process costs (the filter)."""
    busy = work.start(("C",), 0)
    idle = subprocess.Popen(["sleep", "3600"])
    try:
        results = [cost_round(str(idle.pid), 0, env, seconds) for _ in range(rounds)]
    finally:
        stop([*busy, idle])
    return {t: statistics.median(r[t][0] for r in results) for t in ("fp", "dwarf", "bcc")}


def estimate(cost: dict, filtered: dict[str, float]) -> dict[str, float]:
    """ns per workload sample: the runs that were other processes' samples
    (1 - share of them) charged at the filter's cost, the rest to the
    workload (median over the rounds)."""
    out = {}
    for t in ("fp", "dwarf", "bcc"):
        out[t] = statistics.median((r[t] - (1 - sh) * filtered[t]) / sh
                                   for r, sh in zip(cost["rounds"], cost["shares"]))
    return out


# ---------------------------------------------------------------- 2, 3. copies, unwinding

def capture_copies(pids: list[int], seconds: float) -> dict:
    """Record dwarf in-process for `seconds`, keeping every stack copy, the
    frames the live unwinder gave it and the time it took."""
    from profiler.record.bpf import program as bpf_program
    from profiler.record import recorder
    from profiler.options import CallGraph, RecordOptions, Sampling, Target, TargetKind

    got: dict = {"copies": [], "frames": [], "live_ns": 0, "tracker": None, "max_depth": 127}
    real_unwinder, real_on_copy = recorder._copy_unwinder, bpf_program.BpfSampler.on_copy

    def copy_unwinder(sampler, tracker, *args, **kwargs):
        got["tracker"] = tracker
        got["max_depth"] = sampler.flags.get("MAX_DEPTH", 127)
        got["unwinder"] = real_unwinder(sampler, tracker, *args, **kwargs)
        return got["unwinder"]

    def on_copy(self, unwind_copy):
        def keep(copy):
            t0 = time.perf_counter_ns()
            frames = unwind_copy(copy)
            got["live_ns"] += time.perf_counter_ns() - t0
            got["copies"].append(copy)
            got["frames"].append(frames)
            return frames
        return real_on_copy(self, keep)

    options = RecordOptions(target=Target(kind=TargetKind.PIDS, ids=tuple(pids)),
                            sampling=Sampling(frequency=int(FREQ)), duration=seconds,
                            call_graph=CallGraph.DWARF)
    recorder._copy_unwinder, bpf_program.BpfSampler.on_copy = copy_unwinder, on_copy
    try:
        got["recording"] = recorder.record(options)
    finally:
        recorder._copy_unwinder, bpf_program.BpfSampler.on_copy = real_unwinder, real_on_copy
    return got


def ring_bytes(stack_len: int) -> int:
    return RING_HEADER + (COPY_HEAD + stack_len + 7) // 8 * 8


def unwind_passes(got: dict, pids: dict[int, str]) -> dict:
    """Per-sample unwinding time of the captured copies: cold (no disk
    cache), cold with the disk cache, warm (the second pass of one
    unwinder); per process and over all."""
    from profiler.binary.cache import SymbolCache, default_directory
    from profiler.unwind.copies import CopyUnwinder

    tracker, files = got["tracker"], got["recording"].files
    entries = {pid: tracker.entries(pid) for pid in {c.pid for c in got["copies"]}}
    copies = [(c, f) for c, f in zip(got["copies"], got["frames"]) if c.has_user]

    def new_unwinder(cache):
        return CopyUnwinder(entries.get, files.path_for, files.vdso_image,
                            max_depth=got["max_depth"], cache=cache)

    def one_pass(unwinder, subset) -> tuple[int, int]:
        """ns, and how many gave the live unwinder's frames."""
        gc.collect()
        gc.disable()
        same = 0
        try:
            t0 = time.perf_counter_ns()
            results = [unwinder.unwind(c.pid, c.ip, c.sp, c.fp, c.stack, c.lr) for c, _ in subset]
            ns = time.perf_counter_ns() - t0
        finally:
            gc.enable()
        same = sum(r == f for r, (_c, f) in zip(results, subset))
        return ns, same

    out = {}
    groups = {"all": copies}
    for pid, label in pids.items():
        groups[label] = [(c, f) for c, f in copies if c.pid == pid]
    for label, subset in groups.items():
        if not subset:
            continue
        cold_ns, same = one_pass(new_unwinder(None), subset)
        cached = new_unwinder(SymbolCache(default_directory()))
        one_pass(new_unwinder(SymbolCache(default_directory())), subset)  # fill the disk cache
        cached_ns, _ = one_pass(cached, subset)
        warm = [one_pass(cached, subset) for _ in range(WARM_PASSES)]
        n = len(subset)
        out[label] = {"n": n, "cold": cold_ns / n, "cold_cached": cached_ns / n,
                      "warm": min(w[0] for w in warm) / n,
                      "warm_median": statistics.median(w[0] for w in warm) / n,
                      "same": min(same, *(w[1] for w in warm)),
                      "truncated": sum(1 for _c, f in subset if f and f[-1] == TRUNCATED),
                      "depth": statistics.mean(len(f) for _c, f in subset)}
    return out


# ---------------------------------------------------------------- 3. perf

def perf_costs(pids: str, seconds: float, tmp: pathlib.Path) -> dict:
    data = tmp / "perf.data"
    subprocess.run(["perf", "record", "-q", "--call-graph", "dwarf", "-F", FREQ, "-p", pids,
                    "-o", str(data), "--", "sleep", str(seconds)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats = subprocess.run(["perf", "report", "--stats", "-i", str(data)],
                           capture_output=True, text=True).stdout
    m = re.search(r"SAMPLE events:\s+(\d+)", stats)
    samples = int(m.group(1)) if m else 0
    script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True,
                            text=True).stdout
    whole = sum(1 for block in script.split("\n\n")
                if re.search(r"^\s+[0-9a-f]+ (main|_start)\+", block, re.M))
    out = {"samples": samples, "whole": whole}
    for label, extra in (("perf script", []), ("perf script --no-inline", ["--no-inline"]),
                         ("perf script -F ip", ["-F", "ip"])):
        times = []
        for _ in range(2):  # the first also reads the files into the page cache
            t0 = time.monotonic()
            subprocess.run(["perf", "script", "-i", str(data), *extra], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.monotonic() - t0)
        out[label] = min(times) / max(samples, 1) * 1e9
    return out


# ---------------------------------------------------------------- 4. RSS and losses

def rss_run(pids: str, hz: str, seconds: float, every: float, env: dict,
            tmp: pathlib.Path) -> dict:
    raw = tmp / f"rss{hz}.json"
    cmd = [*OURS, "-q", "-F", hz, "-p", pids, "--call-graph", "dwarf", "-d", str(seconds),
           "-o", str(raw)]
    ran0 = _run_ns(pids)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    series, _code, usage = watch_rss(proc, every)
    ran = (_run_ns(pids) - ran0) / 1e9
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"bench/unwind.py: failed ({proc.returncode}): {shlex.join(cmd)}\n{err}")
    profile = json.loads(raw.read_text())
    stats = profile["stats"]
    return {"cmd": cmd, "peak_mb": usage.ru_maxrss / 1024, "series": series, "stats": stats,
            "wall": time.monotonic() - t0, "ran": ran,
            "stacks": len(profile.get("stacks", ())), "keys": len(profile.get("counts", ()))}


# ---------------------------------------------------------------- the table

def row(label: str, *cells, width: int = 13) -> str:
    return f"{label:44}" + "".join(f"{c:>{width}}" for c in cells)


def us(ns: float) -> str:
    return f"{ns / 1000:.2f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="short durations and one round (a smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds of the in-kernel cost (median); "
                        "default 3, 1 with --quick")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/unwind.py: run as root", file=sys.stderr)
        return 1
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    cost_s = 3 if quick else 6
    capture_s = 2 if quick else 4
    perf_s = 2 if quick else 5
    rss_s = 10 if quick else 60
    every = 2 if quick else 5
    started = time.monotonic()
    command = shlex.join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT))
                          else sys.executable, "bench/unwind.py", *sys.argv[1:]])

    with bench_env() as (tmp, env):
        work = Workload(tmp)
        log = lambda s: print(f"[{time.monotonic() - started:6.1f} s] {s}", file=sys.stderr, flush=True)  # noqa: E731

        log("1. in-kernel cost")
        costs = {}
        for label, which, cpu in (("C (CPU 0)", ("C",), 0), ("python3 (CPU 0)", ("py",), 0),
                                  ("both (all CPUs)", ("C", "py"), None)):
            costs[label] = median_cost(work, which, cpu, env, rounds, cost_s)
            log(f"   {label}: {costs[label]['rounds']} share {costs[label]['shares']}")
        filtered = filter_cost(work, env, rounds, cost_s)
        log(f"   filtered runs: {filtered}")

        log("2, 3. copies and unwinding")
        procs = work.start(("C", "py"))
        try:
            labels = {procs[0].pid: "C", procs[1].pid: "python3"}
            got = capture_copies([p.pid for p in procs], capture_s)
            try:
                unwind = unwind_passes(got, labels)
            finally:
                got["recording"].close()
            raw_stats = dict(got["recording"].profile.stats) \
                if hasattr(got["recording"].profile, "stats") else {}
            log("   perf")
            perf = perf_costs(pids_of(procs), perf_s, tmp)
        finally:
            stop(procs)
        lengths = collections.defaultdict(list)
        for c in got["copies"]:
            lengths[labels.get(c.pid, "other")].append(len(c.stack))
            lengths["all"].append(len(c.stack))

        log("4. RSS and losses")
        procs = work.start(("C", "py"))
        try:
            for hz in ("99", FREQ):  # compile and keep each program first
                subprocess.run([*OURS, "-q", "-F", hz, "-p", pids_of(procs), "--call-graph",
                                "dwarf", "-d", "0.3", "-o", "/dev/null", "--format", "folded"],
                               env=env, cwd=ROOT, check=True)
            rss = {hz: rss_run(pids_of(procs), hz, rss_s, every, env, tmp) for hz in ("99", FREQ)}
        finally:
            stop(procs)

    # ------------------------------------------------------------ print
    p = print
    p(f"command: {command}")
    p(f"machine: {os.cpu_count()} CPUs, kernel {os.uname().release}; "
      f"python3 = {work.python}; C = gcc -O2 -fomit-frame-pointer bench/workloads/unwind_chain.c")
    p(f"total time {time.monotonic() - started:.0f} s"
      + (" (--quick: short runs, 1 round; figures are rough)" if quick else ""))
    p("")
    p(f"1. in-kernel ns/sample at {FREQ} Hz (bpf_stats run_time_ns/run_cnt; all three attached at once; "
      f"median of {rounds} x {cost_s} s)                 goal: dwarf <= 3000 ns")
    p(row("", "ours fp", "ours dwarf", "BCC profile", "dwarf/BCC"))
    for label, c in costs.items():
        p(row(f"  {label}: ns/run", f"{c['fp'][0]:.0f}", f"{c['dwarf'][0]:.0f}", f"{c['bcc'][0]:.0f}",
              f"{c['dwarf/bcc']:.2f}"))
        e = estimate(c, filtered)
        p(row(f"    ns/workload sample, estimate", f"{e['fp']:.0f}", f"{e['dwarf']:.0f}",
              f"{e['bcc']:.0f}"))
        b = c["bound"]
        p(row(f"    ns/workload sample, upper bound", f"{b['fp']:.0f}", f"{b['dwarf']:.0f}",
              f"{b['bcc']:.0f}"))
        p(row(f"    program runs counted", c["fp"][1], c["dwarf"][1], c["bcc"][1]))
        p(row(f"    workload's share of the sampled CPUs", f"{100 * c['share']:.0f}%"))
        p("      rounds (ns/run): " + "; ".join(
            " ".join(f"{t} {r[t]:.0f}" for t in ("fp", "dwarf", "bcc")) for r in c["rounds"]))
    p(row("  a sample of another process (filtered): ns/run", f"{filtered['fp']:.0f}",
          f"{filtered['dwarf']:.0f}", f"{filtered['bcc']:.0f}"))
    p("  (ns/run counts every run, also the samples of other processes that the programs only "
      "filter out (this machine is shared);\n"
      "   estimate: (ns/run - (1 - share) x filtered ns/run) / share; upper bound: ns/run / share)")
    p("")
    p("2. bytes per sample through the copy ring (dwarf, 16 KiB limit; "
      f"{len(lengths['all'])} copies of a {capture_s} s in-process recording)")
    p(row("", "copies", "stack mean", "stack max", "ring mean", "at limit"))
    for label in ("C", "python3", "all"):
        ls = lengths.get(label) or [0]
        p(row(f"  {label}", len(lengths.get(label, [])), f"{statistics.mean(ls):.0f}", max(ls),
              f"{statistics.mean(ring_bytes(x) for x in ls):.0f}",
              sum(1 for x in ls if x >= 16384)))
    p("  (ring record = 8-byte ring header + 72-byte copy head + stack bytes, rounded to 8)")
    p("")
    p("3. user-space unwinding per sample (the copies above, in-process; "
      "goal: warm no slower than perf script)")
    p(row("", "samples", "cold", "cold+disk", "warm", "warm med", "=live", "frames", "truncated",
          width=11))
    for label, u in unwind.items():
        p(row(f"  ours CopyUnwinder, {label}", u["n"], us(u["cold"]), us(u["cold_cached"]),
              us(u["warm"]), us(u["warm_median"]), f"{u['same']}/{u['n']}", f"{u['depth']:.1f}",
              u["truncated"], width=11))
    n_live = len(got["copies"])
    p(row("  ours, live during the recording", n_live, "", "", us(got["live_ns"] / max(n_live, 1)),
          width=11))
    stops = getattr(got.get("unwinder"), "stops", {})
    p(f"  live walks ended by: {stops}")
    p(f"  perf record --call-graph dwarf -F {FREQ} -p C,python3 -- sleep {perf_s}: "
      f"{perf['samples']} samples ({perf['whole']} reach main/_start)")
    for label in ("perf script", "perf script --no-inline", "perf script -F ip"):
        p(row(f"  {label} (wall/sample)", perf["samples"], "", "", us(perf[label]), width=11))
    w = unwind["all"]["warm"]
    p(f"  warm ours / perf script: {w / perf['perf script']:.3f}; "
      f"/ perf script --no-inline: {w / perf['perf script --no-inline']:.3f}; "
      f"/ perf script -F ip: {w / perf['perf script -F ip']:.3f}")
    p("  (cold: fresh unwinder, no disk cache, one pass; cold+disk: fresh unwinder, CFI indexes "
      f"from the disk cache;\n   warm: best (and median) of {WARM_PASSES} more passes, gc off; "
      "=live: replay gave the live unwinder's frames;\n   live: inside the recording, gc on, "
      "machine busy; perf script: best of 2, includes symbolizing)")
    p("")
    p(f"4. dwarf run of {rss_s:.0f} s on both processes (2 busy processes); "
      "goals: RSS flat, no ring loss at 999 Hz on 2 CPUs")
    p(row("", "99 Hz", f"{FREQ} Hz"))
    r99, r999 = rss["99"], rss[FREQ]
    p(row("  peak RSS MB (ru_maxrss, incl. writing)", f"{r99['peak_mb']:.0f}", f"{r999['peak_mb']:.0f}"))
    p(row("  wall s (start to exit)", f"{r99['wall']:.1f}", f"{r999['wall']:.1f}"))
    p(row("  workload CPU s meanwhile (both processes)", f"{r99['ran']:.1f}", f"{r999['ran']:.1f}"))
    p(row("  samples per workload CPU s", f"{r99['stats'].get('samples', 0) / max(r99['ran'], 1e-9):.0f}",
          f"{r999['stats'].get('samples', 0) / max(r999['ran'], 1e-9):.0f}"))
    times = sorted({round(t) for t, _ in r99["series"]} | {round(t) for t, _ in r999["series"]})
    by = {hz: {round(t): kb for t, kb in rss[hz]["series"]} for hz in rss}
    for t in times:
        p(row(f"  VmRSS MB at {t:>3} s", *(f"{by[hz][t] / 1024:.1f}" if t in by[hz] else "-"
                                          for hz in ("99", FREQ))))
    for hz in ("99", FREQ):
        s = rss[hz]["series"]
        if len(s) >= 3:
            mid = s[len(s) // 3]
            growth = (s[-1][1] - mid[1]) / 1024
            rss[hz]["growth"] = f"{growth:+.1f} MB ({mid[0]:.0f}->{s[-1][0]:.0f} s)"
        else:
            rss[hz]["growth"] = "-"
    p(row("  VmRSS growth, last two thirds of the run", rss["99"]["growth"], rss[FREQ]["growth"],
          width=24))
    p(row("  distinct stacks in the raw profile", r99["stacks"], r999["stacks"]))
    p(row("  count keys in the raw profile", r99["keys"], r999["keys"]))
    keys = ["samples", "lost_copy_ring_full", "user_copy_failed"] + sorted(
        k for k in r999["stats"] if k.startswith("lost") and k != "lost_copy_ring_full")
    for k in keys:
        p(row(f"  {k}", r99["stats"].get(k, "-"), r999["stats"].get(k, "-")))
    for k in sorted(set(r999["stats"]) - set(keys)):
        p(row(f"  {k}", r99["stats"].get(k, "-"), r999["stats"].get(k, "-")))
    p(f"  commands: {shlex.join(r999['cmd'])}  (and -F 99)")
    if raw_stats:
        p(f"  stats of the in-process capture (section 2): {raw_stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
