"""Benchmark `profiler record` against BCC's profile tool (profile-bpfcc).

Run as root:  .venv/bin/python bench/record.py [--rounds N] [--repeat N] [--skip-loss]

Prints, side by side:
  - in-kernel cost per sample: kernel.bpf_stats_enabled=1, run_time_ns /
    run_cnt of each tool's perf_event program at 999 Hz. Both tools run at
    the same time on the same process, so they sample the same code under the
    same load (run one after the other, the figures swing by 30%), counted
    only while both are attached, both started with empty maps; median of
    the rounds (6 s each), on a process with one hot path (fp_chain) and on
    the many-stacks workload. Also the median of the per-round ratio ours /
    BCC: the two figures of a round share the machine's state, so the ratio
    moves much less than either figure;
  - wall time and peak RSS of a whole 1 s profile (99 Hz, -p PID, to a file:
    SVG for ours, folded text for BCC's), best of N, interleaved. Ours loads
    the program it compiled and kept on its first run (profiler/record/bpf/image.py);
    the row "first run" is ours compiling it (PROFILER_NO_PROGRAM_CACHE=1),
    as BCC's tool does on every run;
  - samples lost on the many-stacks workload (a random walk through 8
    functions, 7 deep) at 999 Hz over 8 s, and how many stacks ours walked
    twice (their bucket was taken).
BCC's tool is given the same kernel headers ours finds (BCC_KERNEL_SOURCE).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchenv import bench_env  # noqa: E402  (bench/benchenv.py: bench/ is on sys.path)

BCC_PROFILE = "/usr/sbin/profile-bpfcc"
# Frame pointers, as BCC's tool walks: the same work on both sides.
OURS = [sys.executable, "-m", "profiler", "record", "--call-graph", "fp"]
WORKLOADS = ROOT / "tests" / "system" / "workloads"


def build(tmp: pathlib.Path, name: str = "many_stacks") -> str:
    exe = tmp / name
    subprocess.run(["gcc", "-O2", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls",
                    "-pthread", "-o", str(exe), str(WORKLOADS / f"{name}.c")], check=True)
    return str(exe)


def perf_event_progs() -> dict[int, tuple[str, int, int]]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return {p["id"]: (p.get("name", ""), p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in json.loads(out or "[]") if p.get("type") == "perf_event"}


def _new_program(name: str, before: set[int], proc: subprocess.Popen) -> int | None:
    """The id of the program `name` that `proc` loaded: the one not in
    `before`, once it has run (None if the tool ended first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = [i for i, (n, _ns, runs) in perf_event_progs().items()
                 if n == name and i not in before and runs]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise SystemExit(f"bench/record.py: another {name} program is loaded; "
                             "run the benchmark on a quiet machine")
        time.sleep(0.02)
    return None


def cost_side_by_side(pid: str, env: dict, seconds: int = 6) -> dict[str, tuple[float, int]]:
    """ns per run and runs of each tool's perf_event program, both attached
    to the same process over the same seconds. BCC's tool compiles first;
    ours (loading its kept program in milliseconds) starts once BCC's
    program runs, so both start with empty maps, and only the time both are
    attached counts."""
    before = set(perf_event_progs())
    bcc = subprocess.Popen([BCC_PROFILE, "-F", "999", "-f", "-p", pid, str(seconds)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bcc_id = _new_program("do_perf_event", before, bcc)
    ours = subprocess.Popen([*OURS, "-q", "-F", "999", "-p", pid, "-d", str(seconds),
                             "-o", "/dev/null", "--format", "folded"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours_id = _new_program("prof_sample", before, ours)
    ids = {"bcc": bcc_id, "ours": ours_id}
    first: dict = {}
    last: dict = {}
    while bcc.poll() is None or ours.poll() is None:
        now = perf_event_progs()
        if all(i in now for i in ids.values()):
            first = first or now
            last = now
        time.sleep(0.2)
    out = {}
    if not first or None in ids.values():
        raise SystemExit("bench/record.py: a tool's program never ran; is the workload alive?")
    for tool, i in ids.items():
        n = last[i][2] - first[i][2]
        out[tool] = ((last[i][1] - first[i][1]) / n if n else float("nan"), n)
    return out


def median_cost(exe: str, args: list[str], env: dict, rounds: int = 3) -> dict[str, tuple[float, int]]:
    """Per tool: median ns per run over the rounds, and runs counted. Also
    "ratio": the median of ours / BCC's per round (each round's two figures
    share the machine's state, so their ratio varies less than either)."""
    worker = subprocess.Popen([exe, *args])
    try:
        time.sleep(0.2)
        results = [cost_side_by_side(str(worker.pid), env) for _ in range(rounds)]
    finally:
        worker.kill()
        worker.wait()
    out = {tool: (statistics.median(r[tool][0] for r in results),
                  sum(r[tool][1] for r in results)) for tool in ("ours", "bcc")}
    out["ratio"] = (statistics.median(r["ours"][0] / r["bcc"][0] for r in results), rounds)
    return out


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run (including its children)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def bcc_loss(exe: str, env: dict, tmp: pathlib.Path) -> tuple[int, int]:
    worker = subprocess.Popen([exe, "30"])
    try:
        time.sleep(0.2)
        out = subprocess.run([BCC_PROFILE, "-F", "999", "-f", "-p", str(worker.pid), "8"],
                             env=env, capture_output=True, text=True).stdout
    finally:
        worker.kill()
        worker.wait()
    total = lost = 0
    for line in out.splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        if "[Missed User Stack]" in stack or "[Missed Kernel Stack]" in stack:
            lost += int(n)
    return lost, total


def our_loss(exe: str, env: dict, tmp: pathlib.Path) -> tuple[int, int]:
    worker = subprocess.Popen([exe, "30"])
    raw = tmp / "loss.json"
    try:
        time.sleep(0.2)
        subprocess.run([*OURS, "-q", "-F", "999", "-p", str(worker.pid), "-d", "8", "-o", str(raw)],
                       env=env, check=True, cwd=ROOT)
    finally:
        worker.kill()
        worker.wait()
    stats = json.loads(raw.read_text())["stats"]
    lost = stats["lost_stack_store_full"] + stats["lost_counts_map_full"]
    print(f"(ours walked {stats.get('stacks_walked_again', 0)} of {stats['samples']} stacks "
          "twice: a taken bucket)")
    return lost, stats["samples"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-loss", action="store_true", help="skip the 8 s loss runs")
    parser.add_argument("--repeat", type=int, default=5, help="runs of the 1 s profile (best)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="6 s rounds of the in-kernel cost (median)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/record.py: run as root", file=sys.stderr)
        return 1
    with bench_env() as (tmp, env):
        exe = build(tmp)
        chain = build(tmp, "fp_chain")
        costs = {"one hot path (fp_chain)": median_cost(chain, ["600"], env, args.rounds),
                 "many stacks": median_cost(exe, ["600"], env, args.rounds)}
        worker = subprocess.Popen([exe, "600"])
        try:
            time.sleep(0.2)
            pid = str(worker.pid)
            ours_runs, cold_runs, bcc_runs = [], [], []
            cold_env = dict(env, PROFILER_NO_PROGRAM_CACHE="1")
            for _ in range(args.repeat):  # interleaved: both see the same load
                ours_runs.append(timed([*OURS, "-q", "-p", pid, "-d", "1",
                                        "-o", str(tmp / "o.svg")], env))
                cold_runs.append(timed([*OURS, "-q", "-p", pid, "-d", "1",
                                        "-o", str(tmp / "o.svg")], cold_env))
                bcc_runs.append(timed([BCC_PROFILE, "-f", "-p", pid, "1"], env))
        finally:
            worker.kill()
            worker.wait()
        print(f"{'':34}{'ours':>14}{'BCC profile':>14}")
        for workload, cost in costs.items():
            print(f"{'in-kernel ns/sample, ' + workload:34}"
                  f"{cost['ours'][0]:>14.0f}{cost['bcc'][0]:>14.0f}")
            print(f"{'  (program runs measured)':34}{cost['ours'][1]:>14}{cost['bcc'][1]:>14}")
            print(f"{'  ours / BCC, median of rounds':34}{cost['ratio'][0]:>14.3f}")
        print(f"{'1 s profile, wall s (best)':34}{min(r[0] for r in ours_runs):>14.2f}"
              f"{min(r[0] for r in bcc_runs):>14.2f}")
        print(f"{'1 s profile, peak RSS MB (best)':34}{min(r[1] for r in ours_runs):>14.0f}"
              f"{min(r[1] for r in bcc_runs):>14.0f}")
        print(f"{'  first run (compiles), wall s':34}{min(r[0] for r in cold_runs):>14.2f}")
        print(f"{'  first run (compiles), RSS MB':34}{min(r[1] for r in cold_runs):>14.0f}")
        if not args.skip_loss:
            ol, ot = our_loss(exe, env, tmp)
            bl, bt = bcc_loss(exe, env, tmp)
            print(f"{'many stacks 999 Hz 8 s, lost':34}{ol:>8}/{ot:<5}{bl:>8}/{bt:<5}")
            print(f"{'  lost %':34}{100 * ol / max(ot, 1):>14.3f}{100 * bl / max(bt, 1):>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
