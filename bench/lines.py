"""Benchmark source lines + inline chains: ours (cold, warm) beside addr2line and llvm-symbolizer.

Run:  .venv/bin/python bench/lines.py [--addresses 5000] [--repeat 3]

For each object (a small C program with always_inline chains, built here at
-O2 -g, and pyenv's libpython3.11, 23 MB with DWARF 5), the same address set
(instruction starts from `objdump -d`, sampled) is resolved to function,
file, line and inline chain by:

  - ours, cold: profiler.symbolize.lines in a fresh process with an empty
    cache directory (find the DWARF file, check it, read it with the engine
    its size picks: our DWARF reader in the process, or one llvm-symbolizer
    batch; save the per-build-id cache);
  - ours, warm: a fresh process whose cache directory the cold run filled
    (no DWARF read, no tool run: one stat() of the file that answered, and
    the answers read from the cache);
  - `addr2line -f -i -C -e FILE`, one batch process, addresses on stdin;
  - `llvm-symbolizer --obj=FILE --inlining --output-style=JSON`, one batch.

Time is wall time of the work: ours measured inside the process around the
lookup (the interpreter's start and imports shown apart), the tools as whole
processes. Peak RSS: ours is the larger of the Python process and the
llvm-symbolizer it ran (getrusage of its children), the tools their own;
"lookup adds" is what the lookup put on top of the process's peak before
it (or llvm-symbolizer's peak), and the peak of a Python doing nothing is
printed for scale. The best of --repeat runs is shown. Goals: cold no
slower than addr2line, warm at most 1/10 of addr2line's time, peak RSS at
most 2x addr2line's.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "unit"))
sys.path.insert(0, str(REPO / "tests"))

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from profiler.symbolize import lines
from profiler.binary.cache import SymbolCache
from profiler.symbolize.objfile import load_object
t1 = time.perf_counter()
path, cache_dir = sys.argv[2], sys.argv[3]
addresses = [int(a, 16) for a in sys.stdin.read().split()]
obj = load_object(path, cache=SymbolCache(None))  # names need it anyway: not counted
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t2 = time.perf_counter()
source = lines.ObjectLines(obj, lines.LinesStore(cache_dir), lines.find_tool())
chains = source.lookup(addresses)
t3 = time.perf_counter()
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"startup": t1 - t0, "lookup": t3 - t2, "kids_kb": kids, "added_kb": added,
                  "engine": "llvm-symbolizer" if kids else "in-process",
                  "with_lines": sum(1 for c in chains.values() if c),
                  "inline": sum(1 for c in chains.values() if len(c) > 1)}))
"""


def _measure(cmd: list[str], stdin: bytes) -> tuple[float, int, bytes]:
    """(wall seconds, peak RSS KB, stdout) of one process. The peak comes
    from /usr/bin/time (GNU time), a small process in between: Linux keeps
    the larger of a process's peak from before exec, so a child forked
    from this one (which holds objdump's listing) would report ours."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as inp, \
            tempfile.TemporaryFile() as err:
        inp.write(stdin)
        inp.seek(0)
        start = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-f", "%M", *cmd], stdin=inp, stdout=out,
                               stderr=err)
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        if code != 0:
            raise SystemExit(f"{cmd[0]} failed ({code}): {text[-2000:]}")
        out.seek(0)
        return wall, int(text.strip().splitlines()[-1]), out.read()


def _addresses(path: str, n: int) -> list[int]:
    from lines_programs import instruction_starts
    every = instruction_starts(path, lambda name: "@" not in name)
    return sorted(random.Random(13).sample(every, n)) if len(every) > n else every


def _bench(label: str, path: str, n: int, repeat: int) -> list[tuple]:
    addresses = _addresses(path, n)
    question = "".join(f"0x{a:x}\n" for a in addresses).encode()
    rows = []
    best = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            runs = []
            for _run in ("cold", "warm"):
                _wall, own, out = _measure([sys.executable, "-c", CHILD, str(REPO), path,
                                            cache], question)
                found = json.loads(out)
                found["rss_kb"] = max(own, found["kids_kb"])
                runs.append(found)
            cold, warm = runs
        a2l = _measure(["addr2line", "-f", "-i", "-C", "-e", path], question)
        llvm = _measure(["llvm-symbolizer", f"--obj={path}", "--inlining",
                         "--output-style=JSON"], question)
        for key, secs, rss, added in (
                ("ours cold", cold["lookup"], cold["rss_kb"],
                 max(cold["added_kb"], cold["kids_kb"])),
                ("ours warm", warm["lookup"], warm["rss_kb"], warm["added_kb"]),
                ("addr2line -i", a2l[0], a2l[1], a2l[1]),
                ("llvm-symbolizer", llvm[0], llvm[1], llvm[1])):
            old = best.get(key)
            best[key] = tuple(min(x, o) for x, o in zip((secs, rss, added), old)) if old \
                else (secs, rss, added)
        startup = cold["startup"]
        counts = (cold["with_lines"], cold["inline"], cold["engine"])
    for key in ("ours cold", "ours warm", "addr2line -i", "llvm-symbolizer"):
        rows.append((label, len(addresses), key, *best[key]))
    return rows, startup, counts, best


def _bare_interpreter_kb() -> int:
    """Peak RSS of this Python doing nothing: the floor of any Python engine."""
    return _measure([sys.executable, "-S", "-c", "pass"], b"")[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addresses", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    print("command: " + " ".join([os.path.relpath(sys.executable, REPO), "bench/lines.py",
                                  f"--addresses {args.addresses}", f"--repeat {args.repeat}"]))
    print("tools:   " + subprocess.run(["addr2line", "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0] + "; " +
          re.sub(r"\s+", " ", subprocess.run(["llvm-symbolizer", "--version"],
                                             capture_output=True, text=True).stdout.strip()))
    from lines_programs import build_c
    work = Path(tempfile.mkdtemp(prefix="bench-lines-"))
    small = str(build_c(work, "inline_chain", ["-g"]))
    # pyenv's python3 (first on PATH), whose libpython keeps its DWARF; the
    # venv's is Debian's, stripped.
    found = subprocess.run(["python3", "-c", "import sysconfig as s; print(s.get_config_var("
                            "'LIBDIR') + '/' + s.get_config_var('LDLIBRARY'))"],
                           capture_output=True, text=True)
    libpython = os.path.realpath(found.stdout.strip()) if found.returncode == 0 else ""
    targets = [("small C program", small)]
    if libpython and os.path.exists(libpython):
        targets.append((f"{os.path.basename(libpython)} "
                        f"({os.path.getsize(libpython) >> 20} MB)", libpython))
    floor = _bare_interpreter_kb()
    print(f"\n{'object':34} {'addrs':>6} {'engine':16} {'seconds':>9} {'peak RSS':>10} "
          f"{'lookup adds':>12}")
    verdicts = []
    for label, path in targets:
        rows, startup, counts, best = _bench(label, path, args.addresses, args.repeat)
        for obj, n, key, secs, rss, added in rows:
            print(f"{obj:34} {n:>6} {key:16} {secs:>9.4f} {rss / 1024:>8.1f} MB "
                  f"{added / 1024:>9.1f} MB")
        print(f"{'':34} {'':>6} (ours: {counts[2]}; {counts[0]} addresses with lines, "
              f"{counts[1]} with inline chains; interpreter start + imports {startup:.3f} s, "
              f"not counted)")
        a2l_t, a2l_m, _ = best["addr2line -i"]
        verdicts.append(f"{label}: cold {best['ours cold'][0] / a2l_t:.2f}x addr2line's time "
                        f"(goal <= 1), warm {best['ours warm'][0] / a2l_t:.3f}x (goal <= 0.1), "
                        f"peak RSS {best['ours cold'][1] / a2l_m:.2f}x (goal <= 2); the "
                        f"lookup adds {best['ours cold'][2] / a2l_m:.2f}x addr2line's peak")
    print(f"\n(the peak RSS of this Python doing nothing, `python -S -c pass`: "
          f"{floor / 1024:.1f} MB; 'lookup adds': the growth of our process's peak during "
          f"the lookup, or llvm-symbolizer's peak when it ran)")
    print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
