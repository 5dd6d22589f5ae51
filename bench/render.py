#!/usr/bin/env python3
"""Rendering benchmark: wall time and peak RSS of `flamegraph` on large profiles.

usage: bench/render.py [LINES ...]   (default: 30000 100000)

Inputs come from ../shared/bench/gen_folded.py LINES 7 (cached in /tmp).
Set FLAMEGRAPH_PL=/path/to/flamegraph.pl to time it on the same inputs.
Each figure is the best of three runs.
"""
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
GEN = ROOT.parent / "shared" / "bench" / "gen_folded.py"
FLAMEGRAPH = [str(ROOT / ".venv" / "bin" / "python"), "-m", "flamegraph.cli"]


def generate(lines: int) -> pathlib.Path:
    path = pathlib.Path(f"/tmp/bench-folded-{lines}-7.folded")
    if not path.exists():
        with open(path, "wb") as out:
            subprocess.run([sys.executable, str(GEN), str(lines), "7"], stdout=out, check=True)
    return path


def measure(command: list[str], source: pathlib.Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one run, read from wait4's rusage."""
    with open(source, "rb") as stdin, open(os.devnull, "wb") as devnull:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdin=stdin, stdout=devnull)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed on {source}")
    return elapsed, usage.ru_maxrss / 1024


def best_of(command, source, runs=3):
    results = [measure(command, source) for _ in range(runs)]
    return min(r[0] for r in results), min(r[1] for r in results)


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [30000, 100000]
    perl = os.environ.get("FLAMEGRAPH_PL")
    print(f"{'input':>22} {'MB':>6} {'tool':>13} {'seconds':>8} {'peak MB':>8} {'s/MB':>7}")
    for lines in sizes:
        source = generate(lines)
        size_mb = source.stat().st_size / 1e6
        tools = [("flamegraph", FLAMEGRAPH)]
        if perl:
            tools.append(("flamegraph.pl", ["perl", perl]))
        for name, command in tools:
            seconds, rss = best_of(command, source)
            print(f"{'gen_folded ' + str(lines) + ' 7':>22} {size_mb:6.1f} {name:>13} "
                  f"{seconds:8.2f} {rss:8.0f} {seconds / size_mb:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
