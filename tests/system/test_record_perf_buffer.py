"""The perf-buffer path (BPF_PERF_OUTPUT), which kernels without BPF ring
buffers (before 5.8) use for stack copies and process notices, forced on
this kernel with PROFILER_TEST_PERF_BUFFER=1. Each test checks, from the
profiler's open descriptors, that the run really sent through per-CPU perf
buffers and not a ring buffer."""
from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from sysutil import (CFLAGS, HERE, REPO, bpf_ready, no_leftovers, parse_folded,  # noqa: F401
                     profiler_cmd)
from conftest import require

pytestmark = pytest.mark.root

PERF_EVENT_ARRAY, RINGBUF = 4, 27
WHOLE = ("_start", "__libc_start_main", "__libc_start_call_main", "main", "chain_outer",
         "chain_middle", "chain_leaf")


def _omit_fp_chain(tmp_path) -> str:
    """fp_chain built without frame pointers: only CFI unwinding of the
    copies can give its whole stacks."""
    require(subprocess.run(["which", "gcc"], capture_output=True).returncode == 0, "needs gcc")
    exe = str(tmp_path / "fp_chain")
    flags = [f for f in CFLAGS if f != "-fno-omit-frame-pointer"] + ["-fomit-frame-pointer"]
    subprocess.run(["gcc", *flags, "-o", exe, os.path.join(HERE, "workloads", "fp_chain.c")],
                   check=True)
    return exe


def _map_types(pid: int) -> list[int]:
    """The types of the BPF maps a process holds open."""
    types = []
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:  # it has exited
        return []
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                types += [int(line.split()[1]) for line in f if line.startswith("map_type:")]
        except (OSError, ValueError):
            pass
    return types


def record(tmp_path, *args: str, perf: bool = True, **extra_env: str
           ) -> tuple[str, str, list[int]]:
    """Run `profiler record ARGS -o out.json`, with perf buffers forced
    unless `perf` is false: (its stderr, the output's path, the map types
    it held while sampling)."""
    out = str(tmp_path / "out.json")
    env = dict(os.environ, PROFILER_TEST_PERF_BUFFER="1" if perf else "0", **extra_env)
    proc = subprocess.Popen(profiler_cmd("record", "-o", out, *args), cwd=REPO, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Its own maps, not any program of ours: another run may still be
        # ending, and a first run compiles for seconds before it loads.
        deadline = time.monotonic() + 60
        types: list[int] = []
        while not types and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            types = _map_types(proc.pid)
        assert types, "the profiler never loaded its program"
        time.sleep(0.1)  # the reader's maps come right after the program's
        types = _map_types(proc.pid) or types
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return err, out, types


def _raw(path: str):
    from profiler.model.raw import RawProfile
    with open(path) as f:
        return RawProfile.from_json(f.read())


def test_stack_copies_go_through_perf_buffers_and_unwind_whole(bpf_ready, tmp_path,
                                                               no_leftovers):
    exe = _omit_fp_chain(tmp_path)
    err, out, types = record(tmp_path, "--call-graph", "dwarf", "-F", "999", "--", exe, "2")
    # notices and copies: two perf-event arrays; no ring buffer at all
    assert types.count(PERF_EVENT_ARRAY) == 2 and RINGBUF not in types, types
    profile = _raw(out)
    assert profile.info.call_graph == "dwarf"
    st = profile.stats
    assert st["samples"] > 1000, st
    # Every sample reached user space or was counted as lost, and none was lost
    # on an idle machine's 2 CPUs at 999 Hz.
    assert profile.total_counted + st["lost_copy_ring_full"] == st["samples"]
    assert st["lost_copy_ring_full"] == 0 and st["process_notices_lost"] == 0, st
    folded = tmp_path / "out.folded"
    subprocess.run(profiler_cmd("report", out, "-q", "-o", str(folded)), cwd=REPO, check=True)
    rows = parse_folded(folded.read_text())
    total = sum(n for f, n in rows if f[0] == "fp_chain")
    whole = sum(n for f, n in rows
                if f[0] == "fp_chain" and tuple(x for x in f[1:] if not x.endswith("_[k]"))
                == WHOLE)
    assert whole >= 0.95 * total, sorted(rows, key=lambda r: -r[1])[:5]


DEEP_FRAME = r"""
/* deep_frame keeps KIB KiB of stack below its return address, then calls the
 * spinning leaf: a whole stack needs a copy of KIB KiB and some hundred bytes.
 * Usage: deep_frame KIB (runs 1 s). */
#include <alloca.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void deep_leaf(void) { for (int i = 0; i < 100000; i++) sink += i; }
__attribute__((noinline)) void deep_frame(double end, long bytes) {
    volatile char *room = alloca(bytes);
    memset((char *)room, 1, bytes);
    while (now() < end) { deep_leaf(); sink += room[sink % bytes]; }
}
int main(int argc, char **argv) { deep_frame(now() + 1.0, atol(argv[1]) * 1024); return 0; }
"""
WHOLE_DEEP = ["_start", "__libc_start_main", "__libc_start_call_main", "main", "deep_frame",
              "deep_leaf"]


@pytest.fixture
def deep_frame(tmp_path) -> str:
    source = tmp_path / "deep_frame.c"
    source.write_text(DEEP_FRAME)
    exe = str(tmp_path / "deep_frame")
    subprocess.run(["gcc", "-O2", "-g", "-fomit-frame-pointer", "-o", exe, str(source)],
                   check=True)
    return exe


@pytest.mark.parametrize("output", ["perf", "ring"])
def test_copies_of_nearly_the_largest_size_unwind_whole(bpf_ready, tmp_path, no_leftovers,
                                                        deep_frame, output):
    """A stack that needs a 63.5 KiB copy unwinds whole with dwarf,65528:
    the copy loop reads every page up to the size asked for (a partial first
    page, whole pages, a partial last one), and through perf buffers, whose
    record size is a 16-bit field, the size is cut to the largest that fits
    (65440 bytes)."""
    err, out, types = record(tmp_path, "--call-graph", "dwarf,65528", "-F", "499", "--",
                             deep_frame, "63", perf=output == "perf")
    assert (RINGBUF in types) == (output == "ring") and \
        (types.count(PERF_EVENT_ARRAY) == 2) == (output == "perf"), types
    profile = _raw(out)
    assert profile.info.stack_copy == (65440 if output == "perf" else 65528)
    st = profile.stats
    assert st["samples"] > 200 and st["lost_copy_ring_full"] == 0, st
    assert profile.total_counted == st["samples"]
    folded = tmp_path / "out.folded"
    subprocess.run(profiler_cmd("report", out, "-q", "-o", str(folded)), cwd=REPO, check=True)
    rows = parse_folded(folded.read_text())
    leaf = sum(n for f, n in rows if f[-1] == "deep_leaf")
    whole = sum(n for f, n in rows if f[1:] == WHOLE_DEEP)
    assert leaf > 200 and whole >= 0.95 * leaf, sorted(rows, key=lambda r: -r[1])[:5]


def test_perf_records_of_the_largest_size_all_arrive(bpf_ready, tmp_path, no_leftovers,
                                                     deep_frame):
    """Every copy full (the stack is deeper than any copy): one word more
    than 65440 bytes and the kernel drops such records without a word."""
    err, out, types = record(tmp_path, "--call-graph", "dwarf,65528", "-F", "499", "--",
                             deep_frame, "100")
    profile = _raw(out)
    st = profile.stats
    assert st["samples"] > 200 and st["lost_copy_ring_full"] == 0, st
    assert profile.total_counted == st["samples"]
    from profiler.unwind.stacks import unwind
    _samples, summary = unwind(profile)
    # deeper than the copy: they end in [truncated], and say so
    assert summary.copy_truncated >= 0.95 * st["samples"]
    assert "deeper than the 65440 bytes copied" in err


@pytest.mark.parametrize("mode", ["fp", "dwarf"])
def test_process_notices_come_through_perf_buffers(bpf_ready, tmp_path, no_leftovers, mode):
    """A shell runs the workload 20 times, 50 ms each: every run is a new
    process that is gone long before the next drain of the maps. Only the
    notices the program sends (a process execs, or is sampled for the first
    time) get its memory maps read while it lives, so that its frames are
    named from the workload's maps. (With both notices taken out of the
    program, fp names none of them, dwarf two thirds.)"""
    exe = str(tmp_path / "fp_chain")
    subprocess.run(["gcc", *CFLAGS, "-o", exe, os.path.join(HERE, "workloads", "fp_chain.c")],
                   check=True)
    script = f"i=0; while [ $i -lt 20 ]; do {exe} 0.05; i=$((i+1)); done"
    err, out, types = record(tmp_path, "--call-graph", mode, "-F", "999", "--",
                             "/bin/sh", "-c", script)
    assert PERF_EVENT_ARRAY in types and RINGBUF not in types, types
    profile = _raw(out)
    assert profile.stats["process_notices_lost"] == 0
    runs = {c.pid for c in profile.counts if c.comm == "fp_chain"}
    assert len(runs) >= 15, runs  # each run its own process, sampled
    folded = tmp_path / "out.folded"
    subprocess.run(profiler_cmd("report", out, "-q", "-o", str(folded)), cwd=REPO, check=True)
    rows = parse_folded(folded.read_text())
    chain = sum(n for f, n in rows if f[0] == "fp_chain")
    named = sum(n for f, n in rows if f[0] == "fp_chain" and "chain_leaf" in f and "main" in f)
    assert chain > 500 and named >= 0.95 * chain, sorted(rows, key=lambda r: -r[1])[:5]


@pytest.mark.parametrize("old_kernel", [False, True])
def test_samples_taken_in_the_kernel_without_bpf_task_pt_regs(bpf_ready, tmp_path, no_leftovers,
                                                              old_kernel):
    """Before 5.15 the kernel has no bpf_task_pt_regs(): a sample taken in
    the kernel (a page fault) cannot get the user registers saved on entry.
    As on such a kernel (and with perf buffers, as before 5.8), the program
    still loads; those samples keep their kernel stack and are counted
    "without user stack", and samples taken in user code stay whole. On this
    kernel, with the helper, the faults' samples have their user stack."""
    exe = str(tmp_path / "pagefault")
    subprocess.run(["gcc", *CFLAGS, "-o", exe, os.path.join(HERE, "workloads", "pagefault.c")],
                   check=True)
    env = {"PROFILER_TEST_NO_TASK_PT_REGS": "1"} if old_kernel else {}
    err, out, types = record(tmp_path, "--call-graph", "dwarf", "-F", "999", "--", exe,
                             "200000", perf=old_kernel, **env)
    assert (PERF_EVENT_ARRAY in types) == old_kernel, types
    folded = tmp_path / "out.folded"
    subprocess.run(profiler_cmd("report", out, "-q", "-o", str(folded)), cwd=REPO, check=True)
    rows = [(f, n) for f, n in parse_folded(folded.read_text()) if f[0] == "pagefault"]
    faults = [(f, n) for f, n in rows if "asm_exc_page_fault_[k]" in f]
    in_fault = sum(n for _, n in faults)
    with_user = sum(n for f, n in faults if "touch_pages" in f and "main" in f)
    user_code = sum(n for f, n in rows if f[-1] == "touch_pages")
    assert in_fault > 100 and user_code > 5, (in_fault, user_code, rows[:5])
    whole_user = sum(n for f, n in rows if f[-1] == "touch_pages" and "main" in f)
    assert whole_user >= 0.95 * user_code
    if old_kernel:
        assert with_user == 0, faults[:3]
        lost = re.search(r"(\d+) without user stack", err)
        assert lost and int(lost.group(1)) >= in_fault, err
    else:
        assert with_user >= 0.95 * in_fault, faults[:3]
