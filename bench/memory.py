"""Benchmark the recorder's memory on a workload that never stops finding new stacks.

Run as root:  .venv/bin/python bench/memory.py [--seconds 60] [--limit 20000]

The workload is tests/system/workloads/many_stacks.c (a random walk through
8 functions, 7 deep: 8^7 possible stacks, nearly every sample a new one),
two threads, built -O2 with frame pointers. Each profiler runs `-F 999 -p
PID` for the same seconds; VmRSS of the profiler
is read every 5 s (bench/benchenv.py). Rows:

  - ours, --call-graph dwarf and fp, with the default --max-stacks and with
    --max-stacks LIMIT (reached within the run): memory grows with distinct
    stacks until the limit, then stays flat. A 1 s run before each compiles
    and keeps its program, as any earlier run would have: the measured run
    loads it without BCC's LLVM (which would add some 90 MB);
  - BCC's profile tool (-F 999 -f -p PID): its stacks live in a fixed kernel
    map, so its memory is flat from the start, and the samples it lost for
    want of room are given beside it ("[Missed User Stack]" and the hash
    collisions it prints as warnings).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from benchenv import bench_env, watch_rss  # noqa: E402

BCC_PROFILE = "/usr/sbin/profile-bpfcc"
EVERY = 5.0


def run(cmd: list[str], seconds: float, env: dict) -> tuple[list[float], str]:
    """VmRSS (MB) every EVERY seconds while the command runs (both tools are
    one process then), and its stdout and stderr."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        series, _code, _usage = watch_rss(proc, EVERY, int(seconds // EVERY))
        out.seek(0)
        return [kb / 1024 for _t, kb in series], out.read()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--limit", type=int, default=20000)
    args = p.parse_args(argv)
    print(f"command: .venv/bin/python bench/memory.py --seconds {args.seconds} "
          f"--limit {args.limit}")
    with bench_env() as (tmp, env):
        exe = tmp / "many_stacks"
        subprocess.run(["gcc", "-O2", "-fno-omit-frame-pointer", "-pthread", "-o", str(exe),
                        str(ROOT / "tests" / "system" / "workloads" / "many_stacks.c")],
                       check=True)
        rows = []
        for label, extra in (("ours dwarf, default limit", ["--call-graph", "dwarf"]),
                             (f"ours dwarf, --max-stacks {args.limit}",
                              ["--call-graph", "dwarf", "--max-stacks", str(args.limit)]),
                             ("ours fp, default limit", ["--call-graph", "fp"]),
                             (f"ours fp, --max-stacks {args.limit}",
                              ["--call-graph", "fp", "--max-stacks", str(args.limit)]),
                             ("BCC profile -f", None)):
            worker = subprocess.Popen([str(exe), str(args.seconds + 30), "2"])
            try:
                time.sleep(0.3)
                if extra is not None:  # compiles and keeps the program: not measured
                    subprocess.run([sys.executable, "-m", "profiler", "record", "-q", "-F", "999",
                                    "-p", str(worker.pid), "-d", "1", *extra, "-o",
                                    str(tmp / "warm.json")], env=env, cwd=ROOT, check=True)
                if extra is None:
                    cmd = [BCC_PROFILE, "-F", "999", "-f", "-p", str(worker.pid),
                           str(args.seconds)]
                else:
                    raw = tmp / "run.json"
                    cmd = [sys.executable, "-m", "profiler", "record", "-q", "-F", "999",
                           "-p", str(worker.pid), "-d", str(args.seconds), *extra,
                           "-o", str(raw)]
                series, text = run(cmd, args.seconds, env)
            finally:
                worker.kill()
                worker.wait()
            if extra is None:
                folded = [l for l in text.splitlines() if l and l[-1].isdigit() and " " in l]
                samples = sum(int(l.rsplit(" ", 1)[1]) for l in folded)
                missed = sum(int(l.rsplit(" ", 1)[1]) for l in folded
                             if "[Missed User Stack]" in l)
                collisions = sum(1 for l in text.splitlines() if "hash collision" in l.lower())
                detail = (f"{len(folded)} distinct stacks kept; {samples} samples, {missed} "
                          f"without user stack, {collisions} collision warnings")
            else:
                doc = json.loads(raw.read_text())
                over = {k for k, s in doc["stacks"].items() if s == [0xFFFF_FFFF_FFFF_FFF1]}
                # counts: [pid, tid, comm, user stack, kernel stack, count]
                merged = sum(c[5] for c in doc["counts"] if str(c[3]) in over)
                detail = (f"{len(doc['stacks']) - len(over)} distinct stacks kept; "
                          f"{doc['stats']['samples']} samples, {merged} merged into "
                          "[stack limit]")
            rows.append((label, series, detail))
    width = max(len(r[0]) for r in rows)
    times = " ".join(f"{int(EVERY * (i + 1)):>5}s" for i in range(int(args.seconds // EVERY)))
    print(f"\nVmRSS (MB) of the profiler every {EVERY:g} s at 999 Hz, "
          "many_stacks with 2 threads\n")
    print(f"{'':{width}} {times}")
    for label, series, _ in rows:
        print(f"{label:{width}} " + " ".join(f"{v:>6.1f}" for v in series))
    print()
    for label, series, detail in rows:
        print(f"{label:{width}}  {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
