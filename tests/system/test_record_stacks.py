"""What `profiler record` samples: frames named and complete, nothing lost."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from sysutil import (REPO, bpf_ready, no_leftovers, parse_folded, profiler_cmd,  # noqa: F401
                     run_profiler, wait_for_programs, workloads)

pytestmark = pytest.mark.root


def _user_frames(frames: list[str]) -> list[str]:
    return [f for f in frames[1:] if not f.endswith("_[k]")]


def test_c_workload_under_command_has_main_to_leaf_named(bpf_ready, workloads, tmp_path,
                                                          no_leftovers):
    out = tmp_path / "out.folded"
    run = run_profiler("record", "-F", "999", "-o", str(out), "--", workloads["fp_chain"], "2")
    assert run.returncode == 0, run.stderr
    assert "command exited with status 3" in run.stderr
    assert "Traceback" not in run.stderr
    rows = [(f, n) for f, n in parse_folded(out.read_text()) if f[0] == "fp_chain"]
    total = sum(n for _, n in rows)
    assert total > 1000  # ~2 s at 999 Hz on one CPU
    # A command is unwound by CFI (--call-graph dwarf): the whole stack, from
    # libc's start-up through main to the leaf, in order, all named.
    full = re.compile(r"^_start;__libc_start_main;__libc_start_call_main;main;chain_outer;"
                      r"chain_middle;chain_leaf$")
    good = sum(n for f, n in rows if full.search(";".join(_user_frames(f))))
    assert good >= 0.95 * total, (good, total, sorted(rows, key=lambda r: -r[1])[:5])
    # The folded output is canonical: sorted, one line per stack.
    lines = out.read_text().splitlines()
    stacks = [l.rpartition(" ")[0] for l in lines]
    assert lines == sorted(lines) and len(set(stacks)) == len(stacks)


def test_many_distinct_stacks_lose_under_a_thousandth(bpf_ready, workloads, tmp_path):
    out = tmp_path / "many.json"
    run = run_profiler("record", "--call-graph", "fp", "-F", "999", "-d", "5", "-o", str(out),
                       "--", workloads["many_stacks"], "30")
    assert run.returncode == 0, run.stderr
    from profiler.model.raw import RawProfile
    profile = RawProfile.from_json(out.read_text())
    taken = profile.stats["samples"]
    lost = profile.stats["lost_stack_store_full"] + profile.stats["lost_counts_map_full"]
    assert taken > 4000
    assert lost < 0.001 * taken, profile.stats
    # Every sample taken is either counted or counted as lost: no silent loss.
    assert profile.total_counted + lost == taken
    distinct_user = {c.user_stack for c in profile.counts if c.comm == "many_stacks"}
    assert len(distinct_user) > 2000
    assert re.search(r"\d+ samples, \d+ lost \(0\.\d\d%\)", run.stderr)


def test_pid_target_includes_threads_started_during_the_run(bpf_ready, workloads, tmp_path):
    proc = subprocess.Popen([workloads["threads"], "30", "-1"])  # 2nd thread on SIGUSR1
    out = tmp_path / "threads.folded"
    try:
        prof = subprocess.Popen(profiler_cmd("record", "-p", str(proc.pid), "-d", "30",
                                             "--per-thread", "-o", str(out)),
                                cwd=REPO, stderr=subprocess.PIPE, text=True)
        assert wait_for_programs(True), "the profiler never loaded its program"
        time.sleep(0.5)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.5)
        prof.send_signal(signal.SIGINT)
        _, err = prof.communicate(timeout=30)
        assert prof.returncode == 0, err
    finally:
        proc.kill()
        proc.wait()
    rows = parse_folded(out.read_text())
    tids = {f[0] for f, _ in rows}
    assert all(t.startswith(f"threads-{proc.pid}/") for t in tids), tids
    # Demangled template names, each on its own thread; the second thread
    # was created after the profiler attached.
    by_fn = {fn: {f[0] for f, _ in rows if fn in f}
             for fn in ("work::Spinner<int>::spin(double)", "work::Spinner<double>::spin(double)")}
    assert all(by_fn.values()), out.read_text()[:2000]
    assert by_fn["work::Spinner<int>::spin(double)"].isdisjoint(by_fn["work::Spinner<double>::spin(double)"])


def test_command_with_two_cpp_threads(bpf_ready, workloads, tmp_path):
    out = tmp_path / "cpp.folded"
    run = run_profiler("record", "-F", "499", "--per-thread", "-o", str(out),
                       "--", workloads["threads"], "1.5", "0.2")
    assert run.returncode == 0, run.stderr
    rows = parse_folded(out.read_text())
    threads_seen = {f[0] for f, _ in rows if any("work::Spinner<" in x for x in f)}
    assert len(threads_seen) == 2, threads_seen
    assert not any("_ZN" in x for f, _ in rows for x in f)


def test_process_exiting_mid_run_keeps_its_symbols(bpf_ready, workloads, tmp_path):
    """Short-lived processes, each running a binary deleted while it runs."""
    stop = threading.Event()

    def spawn():
        i = 0
        while not stop.is_set():
            exe = tmp_path / f"exiter{i % 100}"
            shutil.copy(workloads["exiter"], exe)
            p = subprocess.Popen([str(exe), "0.25"])
            time.sleep(0.05)
            os.unlink(exe)
            p.wait()
            i += 1

    spawner = threading.Thread(target=spawn, daemon=True)
    spawner.start()
    try:
        out = tmp_path / "exit.folded"
        run = run_profiler("record", "-F", "499", "-d", "3", "-o", str(out))
        assert run.returncode == 0, run.stderr
    finally:
        stop.set()
        spawner.join()
    rows = [(f, n) for f, n in parse_folded(out.read_text()) if f[0].startswith("exiter")]
    total = sum(n for _, n in rows)
    named = sum(n for f, n in rows if "exiter_work" in f)
    assert total > 100, out.read_text()[:1000]
    assert named >= 0.9 * total, [r for r in rows if "exiter_work" not in r[0]][:5]
    assert not any("[unknown]" in x for f, _ in rows for x in f)


def test_page_faults_with_period_one(bpf_ready, workloads, tmp_path):
    out = tmp_path / "pf.folded"
    # 300 ms asleep first: the 3000 faults take a few milliseconds, and a
    # process that short-lived can end before the profiler, on a loaded
    # machine, reads its memory maps (its frames would go unnamed; counted,
    # and not what this test is about).
    run = run_profiler("record", "-e", "page-faults", "-c", "1", "-o", str(out),
                       "--", workloads["pagefault"], "3000", "300")
    assert run.returncode == 0, run.stderr
    rows = parse_folded(out.read_text())
    touching = sum(n for f, n in rows if "touch_pages" in f)
    assert 3000 <= touching <= 3100, touching  # one sample per fault, each fault once


def test_kernel_only_and_user_only(bpf_ready, workloads, tmp_path):
    k = tmp_path / "k.folded"
    run = run_profiler("record", "-K", "-F", "499", "-o", str(k),
                       "--", workloads["pagefault"], "60000")  # long enough to sample
    assert run.returncode == 0, run.stderr
    rows = parse_folded(k.read_text())
    assert rows and all(x.endswith("_[k]") for f, _ in rows for x in f[1:])
    assert sum(n for f, n in rows if "asm_exc_page_fault_[k]" in f) > 10
    u = tmp_path / "u.folded"
    run = run_profiler("record", "-U", "-F", "499", "-o", str(u),
                       "--", workloads["fp_chain"], "0.5")
    assert run.returncode == 0, run.stderr
    rows = parse_folded(u.read_text())
    assert rows and not any(x.endswith("_[k]") for f, _ in rows for x in f)


def test_processes_the_command_starts_are_profiled_too(bpf_ready, workloads, tmp_path,
                                                       no_leftovers):
    # A shell that forks the workload (the `; true` keeps it from exec'ing it
    # in place), as `profiler record -- make bench` or a script would.
    out = tmp_path / "out.folded"
    script = f"{workloads['fp_chain']} 1; true"
    run = run_profiler("record", "-F", "999", "-o", str(out), "--", "/bin/sh", "-c", script)
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr
    rows = [(f, n) for f, n in parse_folded(out.read_text()) if f[0] == "fp_chain"]
    assert sum(n for _, n in rows) > 500  # ~1 s at 999 Hz, in the child
    assert any("chain_leaf" in f for f, _ in rows)
    # The command's cgroup is gone afterwards.
    assert not list(pathlib.Path("/sys/fs/cgroup").glob("**/profiler-*"))


def test_generations_never_mix_up_stacks(bpf_ready, workloads, tmp_path):
    """Two processes with thousands of stacks each, drained every 50 ms: each
    stack-trace map is emptied and its bucket ids reused about eighty times,
    so a bucket id read in the wrong generation would name another process's
    stack. Each process's stacks hold only its own functions (the second is
    the same program with its functions renamed), and every sample taken is
    counted with its frames."""
    twin = tmp_path / "twin_stacks"
    # Longer names: the twin keeps the build-id, and its size tells the
    # symbol cache the two apart.
    renames = [f"--redefine-sym=f{i}=twin_f{i}" for i in range(8)] + \
        ["--redefine-sym=spin=twin_spin"]
    subprocess.run(["objcopy", *renames, workloads["many_stacks"], str(twin)], check=True)
    a = subprocess.Popen([workloads["many_stacks"], "30"])
    b = subprocess.Popen([str(twin), "30"])
    raw = tmp_path / "two.json"
    try:
        run = run_profiler("record", "--call-graph", "fp", "-F", "999", "-p", f"{a.pid},{b.pid}",
                           "-d", "4",
                           "--drain-interval", "0.05", "-o", str(raw))
    finally:
        for p in (a, b):
            p.kill()
            p.wait()
    assert run.returncode == 0, run.stderr
    from profiler.model.raw import RawProfile
    from profiler.unwind.stacks import unwind
    profile = RawProfile.from_json(raw.read_text())
    assert profile.total_counted == profile.stats["samples"] > 4000
    assert unwind(profile)[1].missing_stack == 0
    folded = tmp_path / "two.folded"
    run = run_profiler("report", str(raw), "-o", str(folded))
    assert run.returncode == 0, run.stderr
    own = {"many_stacks": re.compile(r"^(f[0-7]|spin)$"),
           "twin_stacks": re.compile(r"^twin_(f[0-7]|spin)$")}
    seen = {"many_stacks": 0, "twin_stacks": 0}
    for frames, n in parse_folded(folded.read_text()):
        user = _user_frames(frames)
        other = own["twin_stacks" if frames[0] == "many_stacks" else "many_stacks"]
        assert not any(other.match(f) or f.startswith("[unmapped]") for f in user), frames
        seen[frames[0]] += n
    assert min(seen.values()) > 1000, seen


def test_a_small_stack_map_is_drained_sooner_instead_of_overflowing(bpf_ready, workloads,
                                                                     tmp_path):
    """1,024 stack slots against ~1,000 new stacks a second: drains come
    every ~0.1 s, so few buckets are taken when a stack arrives (a fixed
    one-second drain walks a third of the stacks twice) and none is lost."""
    raw = tmp_path / "small.json"
    run = run_profiler("record", "--call-graph", "fp", "-F", "999", "-d", "5",
                       "--stack-storage-size", "1024",
                       "-o", str(raw), "--", workloads["many_stacks"], "30")
    assert run.returncode == 0, run.stderr
    from profiler.model.raw import RawProfile
    stats = RawProfile.from_json(raw.read_text()).stats
    assert stats["samples"] > 4000
    assert stats["lost_stack_store_full"] == stats["lost_counts_map_full"] == 0, stats
    assert stats["stacks_walked_again"] < 0.15 * stats["samples"], stats


def test_the_sampled_kernel_frame_is_shown_once(bpf_ready, tmp_path):
    """BCC's tool also keys by the sampled instruction pointer and, on this
    kernel, prints the kernel leaf twice; each frame appears once here."""
    out = tmp_path / "leaf.folded"
    run = run_profiler("record", "-K", "-F", "999", "-d", "1", "-o", str(out),
                       "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64k", "count=100000000")
    assert run.returncode == 0, run.stderr
    rows = parse_folded(out.read_text())
    assert sum(n for f, n in rows if len(f) > 2) > 500  # nearly all in the kernel
    doubled = [f for f, _ in rows if len(f) > 2 and f[-1] == f[-2]]
    assert not doubled, doubled[:3]


def test_fp_mode_keeps_the_caller_of_a_frameless_leaf(bpf_ready, workloads, tmp_path,
                                                     no_leftovers):
    """GCC gives the small chain_leaf no frame even with frame pointers on, so
    a frame-pointer walk from inside it skips its caller, chain_middle. fp
    mode puts it back where the leaf's CFI says its frame is not set up."""
    out = tmp_path / "fp.folded"
    run = run_profiler("record", "--call-graph", "fp", "-U", "-F", "999", "-o", str(out), "--",
                       workloads["fp_chain"], "2")
    assert run.returncode == 0, run.stderr
    rows = [(";".join(f[1:]), n) for f, n in parse_folded(out.read_text()) if f[0] == "fp_chain"]
    leaf = [(f, n) for f, n in rows if f.endswith(";chain_leaf")]
    in_leaf = sum(n for _, n in leaf)
    assert in_leaf > 500
    kept = sum(n for f, n in leaf if f.endswith("main;chain_outer;chain_middle;chain_leaf"))
    assert kept >= 0.99 * in_leaf, sorted(leaf, key=lambda r: -r[1])[:5]
    # Nothing invented: no stack names a function twice in a row.
    assert not [f for f, _ in rows if any(a == b for a, b in zip(f.split(";"),
                                                                   f.split(";")[1:]))]


def test_dwarf_mode_counts_every_sample_of_many_threads(bpf_ready, workloads, tmp_path):
    """Copies of thousands of distinct stacks from four threads at 999 Hz:
    every sample taken is counted or counted as lost, and the ring loses
    none."""
    out = tmp_path / "many.json"
    run = run_profiler("record", "--call-graph", "dwarf", "-F", "999", "-d", "4", "-o", str(out),
                       "--", workloads["many_stacks"], "30")
    assert run.returncode == 0, run.stderr
    from profiler.model.raw import RawProfile
    profile = RawProfile.from_json(out.read_text())
    st = profile.stats
    assert st["samples"] > 2000, st
    assert st["lost_copy_ring_full"] == 0, st
    assert st["unwind_errors"] == 0, st
    assert profile.total_counted + st["lost_copy_ring_full"] == st["samples"], st
    assert profile.info.call_graph == "dwarf" and profile.info.stack_copy == 16384
    whole = sum(c.count for c in profile.counts if c.comm == "many_stacks" and
                len(profile.stacks.get(c.user_stack, ())) >= 3)
    mine = sum(c.count for c in profile.counts if c.comm == "many_stacks")
    assert whole >= 0.95 * mine, (whole, mine)


@pytest.mark.parametrize("mode", ["fp", "dwarf"])
def test_distinct_stacks_past_the_limit_are_merged_and_counted(bpf_ready, workloads, tmp_path,
                                                               mode):
    """--max-stacks bounds what a run keeps: stacks first seen past it share
    one [stack limit] frame under their process, every sample stays counted,
    and the end-of-run note gives the figure the flame graph shows."""
    raw, folded = tmp_path / "capped.json", tmp_path / "capped.folded"
    limit = 300
    run = run_profiler("record", "--call-graph", mode, "-F", "999", "-d", "3",
                       "--max-stacks", str(limit), "-o", str(raw),
                       "--", workloads["many_stacks"], "30")
    assert run.returncode == 0, run.stderr
    from profiler.model.raw import OVER_STACK_LIMIT, RawProfile
    profile = RawProfile.from_json(raw.read_text())
    assert profile.info.max_stacks == limit
    kept = [k for k, s in profile.stacks.items() if s != (OVER_STACK_LIMIT,)]
    assert len(kept) == limit  # many_stacks finds thousands in 3 s: the limit was reached
    over = [c for c in profile.counts if profile.stacks.get(c.user_stack) == (OVER_STACK_LIMIT,)]
    merged = sum(c.count for c in over)
    assert merged > 0 and {c.comm for c in over} == {"many_stacks"}
    lost = sum(profile.stats[k] for k in ("lost_stack_store_full", "lost_counts_map_full",
                                          "lost_copy_ring_full"))
    assert profile.total_counted + lost == profile.stats["samples"]
    note = re.search(r"(\d+) samples of stacks first seen after the run held its (\d+) "
                     r"distinct stacks", run.stderr)
    assert note, run.stderr
    report = run_profiler("report", str(raw), "-o", str(folded))
    assert report.returncode == 0, report.stderr
    rows = parse_folded(folded.read_text())
    shown = sum(n for f, n in rows if {"[stack limit]", "[stack limit]_[k]"} & set(f))
    # A merged user side sits right under its process (its kernel side, if
    # any, above it); a merged kernel side is one frame on top of the user's.
    assert all(f[0] == "many_stacks" and f[1] == "[stack limit]"
               for f, _ in rows if "[stack limit]" in f), [f for f, _ in rows][:5]
    assert all(f[-1] == "[stack limit]_[k]" for f, _ in rows if "[stack limit]_[k]" in f)
    assert int(note.group(1)) == shown >= merged and int(note.group(2)) == limit
    # The stacks kept are whole: main down to the random walk's leaf.
    # (spin, a static function, is inlined: a frame of its own, `_[i]`)
    leaves = {"spin", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"}
    whole = sum(n for f, n in rows if "main" in f and f[-1].removesuffix("_[i]") in leaves)
    kept = sum(n for f, n in rows) - shown
    assert whole > kept / 2, sorted(rows, key=lambda r: -r[1])[:5]
