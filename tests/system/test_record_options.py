"""`profiler record` options that choose what is sampled and how the run
talks: -t, -C, --include-idle, progress on a terminal, flame-graph options."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import require
from profiler.record.recorder import online_cpus
from sysutil import REPO, bpf_ready, parse_folded, profiler_cmd, run_profiler, workloads  # noqa: F401

pytestmark = pytest.mark.root


def _threads_of(pid: int, want: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        if len(tids) >= want:
            return tids
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never had {want} threads")


def test_tid_target_samples_that_thread_only(bpf_ready, workloads):
    proc = subprocess.Popen([workloads["threads"], "20", "0"])
    try:
        main, first, second = _threads_of(proc.pid, 3)[:3]  # created in this order
        run = run_profiler("record", "-t", str(first), "--per-thread", "-F", "499", "-d", "1.5",
                           "-o", "-")
    finally:
        proc.kill()
        proc.wait()
    assert run.returncode == 0, run.stderr
    rows = parse_folded(run.stdout)
    assert sum(n for _, n in rows) > 300
    assert {f[0] for f, _ in rows} == {f"threads-{proc.pid}/{first}"}, {f[0] for f, _ in rows}
    assert any("work::Spinner<int>::spin(double)" in f for f, _ in rows)
    assert not any("Spinner<double>" in x for f, _ in rows for x in f)


def test_cpu_list_limits_sampling_to_those_cpus(bpf_ready, workloads):
    cpus = online_cpus()
    require(len(cpus) >= 2, "needs two online CPUs")
    busy, other = cpus[-1], cpus[0]
    worker = subprocess.Popen(["taskset", "-c", str(busy), workloads["fp_chain"], "20"])
    try:
        time.sleep(0.2)
        on_busy = run_profiler("record", "-C", str(busy), "-F", "499", "-d", "1", "-o", "-")
        on_other = run_profiler("record", "-C", str(other), "-F", "499", "-d", "1", "-o", "-")
    finally:
        worker.kill()
        worker.wait()
    assert on_busy.returncode == 0 and on_other.returncode == 0, on_busy.stderr + on_other.stderr
    leaf = lambda text: sum(n for f, n in parse_folded(text) if "chain_leaf" in f)  # noqa: E731
    assert leaf(on_busy.stdout) > 300 and leaf(on_other.stdout) == 0


def test_idle_samples_only_with_include_idle(bpf_ready):
    """The idle task is sampled when it switches out (cpu-clock does not
    fire on an idle CPU of this VM, for BCC's tool either)."""
    def record(*extra):
        waker = subprocess.Popen(["sh", "-c", "for i in $(seq 300); do sleep 0.003; done"])
        try:
            return run_profiler("record", "-e", "context-switches", "-c", "1", *extra,
                                "-d", "1", "-o", "-")
        finally:
            waker.kill()
            waker.wait()
    with_idle, without = record("--include-idle"), record()
    assert with_idle.returncode == 0 and without.returncode == 0
    assert any(f[0].startswith("swapper") for f, _ in parse_folded(with_idle.stdout))
    assert not any(f[0].startswith("swapper") for f, _ in parse_folded(without.stdout))


def _stderr_on_a_terminal(args: list[str], timeout: float = 60) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(profiler_cmd(*args), cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), out.decode(errors="replace")


def test_progress_once_a_second_on_a_terminal_only(bpf_ready, workloads, tmp_path):
    code, err = _stderr_on_a_terminal(["record", "-d", "3", "-o", str(tmp_path / "a.svg"),
                                       "--", workloads["fp_chain"], "10"])
    assert code == 0, err
    ticks = re.findall(r"recording: (\d+) s, (\d+) s left, (\d+) samples", err)
    assert len(ticks) >= 2, err
    assert [int(t[0]) for t in ticks] == sorted(int(t[0]) for t in ticks)
    assert int(ticks[-1][2]) > 0
    run = run_profiler("record", "-d", "2", "-o", str(tmp_path / "b.svg"),
                       "--", workloads["fp_chain"], "10")  # stderr is a pipe
    assert run.returncode == 0 and "recording:" not in run.stderr
    code, err = _stderr_on_a_terminal(["record", "-q", "-d", "2", "-o", str(tmp_path / "c.svg"),
                                       "--", workloads["fp_chain"], "10"])
    assert code == 0 and err.strip() == "", err


def test_flame_graph_options_are_passed_on(bpf_ready, workloads, tmp_path):
    out = tmp_path / "opts.svg"
    run = run_profiler("record", "-F", "499", "--width", "640", "--colors", "aqua",
                       "--title", "My run", "--countname", "ticks", "-o", str(out),
                       "--", workloads["fp_chain"], "0.5")
    assert run.returncode == 0, run.stderr
    root = ET.parse(out).getroot()
    assert root.get("width") == "640"
    text = out.read_text()
    assert ">My run</text>" in text and " ticks, " in text
    assert "command exited with status 3" in text  # the subtitle is still ours
