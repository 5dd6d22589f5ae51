"""Benchmark pprof export and import beside `go tool pprof -proto`.

Run:  .venv/bin/python bench/export.py [--samples N] [--locations N] [--rounds N]

One synthetic profile, built the way a recording looks: 100,000 samples over
20,000 locations and about 5,000 functions, in a few mappings (an executable,
libraries, the kernel); stacks 10-40 deep made by walks down a fixed random
call graph from a few roots (so stacks share their callers, as real ones
do), one location in ten with an inlined callee, one in twenty unresolved,
a third of the samples with kernel frames on top, 40 threads of 4
processes. Timed, best of --rounds:

  - ours, write: `profiler.export.pprof.write` (model -> gzipped pprof),
    with encode (model -> protobuf bytes) and gzip shown apart;
  - ours, read: `profiler.export.pprof.read` (gzipped pprof -> model);
  - Go: `go tool pprof -proto FILE > out.pb.gz`, reading our file and
    re-encoding it (wall time of the process, its output's size), with and
    without -symbolize=none (pprof otherwise looks for the mapped binaries).

Printed side by side with the ratios the issue sets: ours within 2x of Go's
time, our file within 1.2x of Go's size.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from profiler.export import pprof  # noqa: E402
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping,  # noqa: E402
                                    Profile, Sample, ValueType)


def synthetic(samples: int = 100_000, locations: int = 20_000, functions: int = 5_000,
              seed: int = 1) -> Profile:
    rnd = random.Random(seed)
    mappings = {
        1: Mapping(id=1, start=0x55D000000000, limit=0x55D000800000, offset=0x1000,
                   path="/usr/bin/server", build_id="5e" * 20, has_functions=True),
        2: Mapping(id=2, start=0x7F1000000000, limit=0x7F1000200000, offset=0x28000,
                   path="/usr/lib/x86_64-linux-gnu/libc.so.6", build_id="1c" * 20,
                   has_functions=True),
        3: Mapping(id=3, start=0x7F2000000000, limit=0x7F2000400000, offset=0x0,
                   path="/usr/lib/x86_64-linux-gnu/libstdc++.so.6", build_id="57" * 20,
                   has_functions=True),
        4: Mapping(id=4, start=0xFFFFFFFF81000000, limit=0xFFFFFFFF83000000,
                   path="[kernel.kallsyms]", has_functions=True),
    }
    funcs = {}
    for i in range(1, functions + 1):
        ns = rnd.choice(["net", "db", "http", "cache", "json", "std"])
        name = f"{ns}::Component{i % 97}::method_{i}(int, std::string const&)"
        funcs[i] = Function(id=i, name=name, system_name=f"_ZN{len(ns)}{ns}{i}Ev",
                            filename=f"src/{ns}/component{i % 97}.cc", start_line=i % 900 + 1)
    n_kernel = locations // 20
    locs = {}
    for i in range(1, locations + 1):
        kernel = i > locations - n_kernel
        mid = 4 if kernel else rnd.choices([1, 2, 3], [6, 2, 2])[0]
        m = mappings[mid]
        address = m.start + rnd.randrange(0x1000, m.limit - m.start)
        kind = FrameKind.KERNEL if kernel else FrameKind.USER
        if rnd.random() < 0.05:
            locs[i] = Location(id=i, mapping_id=mid, address=address, kind=kind,
                               label="x", unresolved="no symbol")
            continue
        depth = 2 if not kernel and rnd.random() < 0.1 else 1
        locs[i] = Location(id=i, mapping_id=mid, address=address, kind=kind, lines=tuple(
            Line(function_id=rnd.randrange(1, functions + 1), line=rnd.randrange(1, 2000))
            for _ in range(depth)))
    user_ids = list(range(1, locations - n_kernel + 1))
    kernel_ids = list(range(locations - n_kernel + 1, locations + 1))
    # A fixed call graph: each user location calls 3 others; walks from 8 roots.
    callees = {i: rnd.sample(user_ids, 3) for i in user_ids}
    kcallees = {i: rnd.sample(kernel_ids, 2) for i in kernel_ids}
    roots = rnd.sample(user_ids, 8)
    threads = [(pid, pid + t, f"worker-{pid}") for pid in (1000, 2000, 3000, 4000)
               for t in range(10)]
    out = []
    for _ in range(samples):
        at = rnd.choice(roots)
        stack = [at]
        for _ in range(rnd.randrange(10, 41) - 1):
            at = rnd.choice(callees[at])
            stack.append(at)
        if rnd.random() < 0.33:
            k = rnd.choice(kernel_ids)
            kstack = [k]
            for _ in range(rnd.randrange(2, 8)):
                k = rnd.choice(kcallees[k])
                kstack.append(k)
            stack.extend(kstack)
        stack.reverse()  # leaf first
        n = rnd.choice((1, 1, 1, 2, 3))
        pid, tid, comm = rnd.choice(threads)
        out.append(Sample(locations=tuple(stack), values=(n, n * 10_101_010),
                          pid=pid, tid=tid, comm=comm))
    return Profile(sample_types=(ValueType("samples", "count"), ValueType("cpu", "nanoseconds")),
                   samples=tuple(out), locations=locs, functions=funcs, mappings=mappings,
                   period_type=ValueType("cpu", "nanoseconds"), period=10_101_010,
                   time_nanos=1_700_000_000_000_000_000, duration_nanos=30_000_000_000,
                   default_sample_type="samples")


def best(fn, rounds: int):
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--locations", type=int, default=20_000)
    ap.add_argument("--functions", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    started = time.perf_counter()
    profile = synthetic(args.samples, args.locations, args.functions)
    frames = sum(len(s.locations) for s in profile.samples)
    print(f"profile: {len(profile.samples):,} samples, {len(profile.locations):,} locations, "
          f"{len(profile.functions):,} functions, {frames:,} frames "
          f"(built in {time.perf_counter() - started:.1f} s)")

    t_encode, raw = best(lambda: pprof.encode(profile), args.rounds)
    t_gzip, _ = best(lambda: pprof.gzip_bytes(raw), args.rounds)
    t_write, data = best(lambda: pprof.write(profile), args.rounds)
    t_read, back = best(lambda: pprof.read(data), args.rounds)
    assert back.samples == profile.samples and back.locations.keys() == profile.locations.keys()

    rows = [("ours: write (encode + gzip)", t_write, len(data)),
            ("  of which encode", t_encode, len(raw)),
            ("  of which gzip", t_gzip, None),
            ("ours: read (gunzip + decode + model)", t_read, None)]
    go = shutil.which("go")
    go_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ours.pb.gz")
        with open(path, "wb") as f:
            f.write(data)
        if go:
            for label, extra in (("go tool pprof -proto", []),
                                 ("go tool pprof -symbolize=none -proto", ["-symbolize=none"])):
                out = os.path.join(tmp, "out.pb.gz")

                def run(extra=extra, out=out):
                    with open(out, "wb") as f:
                        subprocess.run([go, "tool", "pprof", *extra, "-proto", path],
                                       stdout=f, stderr=subprocess.DEVNULL, check=True)
                run()  # warm the page cache and the tool's binary
                t, _ = best(run, args.rounds)
                go_rows.append((label, t, os.path.getsize(out)))
                back_go = pprof.read(open(out, "rb").read())
                assert sum(s.values[0] for s in back_go.samples) == \
                    sum(s.values[0] for s in profile.samples)
    rows += go_rows

    print(f"\n{'':40} {'time':>9} {'size':>12}")
    for label, t, size in rows:
        print(f"{label:40} {t * 1000:7.0f} ms {'' if size is None else f'{size:,} B':>12}")
    if not go_rows:
        print("\n(go not found: install golang-go for the comparison)")
        return 0
    go_label, go_t, go_size = go_rows[0]
    fair_label, fair_t, _ = go_rows[1]
    print(f"\nratios (goal: time <= 2x, size <= 1.2x of {go_label}):")
    for label, t in (("write", t_write), ("read", t_read), ("write + read", t_write + t_read)):
        print(f"  ours {label:13} / go: {t / go_t:5.2f}x   "
              f"(/ {fair_label}: {t / fair_t:5.2f}x)")
    print(f"  our size / go's size: {len(data) / go_size:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
