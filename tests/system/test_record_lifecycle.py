"""How `profiler record` starts, stops and fails: one message, never a
traceback, output written on Ctrl-C/SIGTERM, nothing left loaded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from sysutil import (REPO, bpf_ready, no_leftovers, parse_folded,  # noqa: F401
                     profiler_cmd, run_profiler, wait_for_programs, workloads)

pytestmark = pytest.mark.root


def _one_message(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.count("profiler: error:") == 1, stderr


def test_unsupported_event_is_refused_before_loading(bpf_ready, no_leftovers, tmp_path):
    from profiler.record.events import probe, build_attr, resolve_event
    from profiler.options import Sampling
    run = run_profiler("record", "-e", "cycles", "-d", "1", "-o", str(tmp_path / "x.svg"))
    if probe(build_attr(resolve_event("cycles"), Sampling()), 0) is None:
        # A machine with a PMU: the hardware path records instead.
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        return
    assert run.returncode != 0
    _one_message(run.stderr)
    assert "'cycles'" in run.stderr and "ENOENT" in run.stderr and "cpu-clock" in run.stderr
    assert not (tmp_path / "x.svg").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_run_and_the_output_is_written(bpf_ready, workloads, tmp_path, sig,
                                                       no_leftovers):
    worker = subprocess.Popen([workloads["fp_chain"], "30"])
    out = tmp_path / "sig.folded"
    try:
        prof = subprocess.Popen(profiler_cmd("record", "-p", str(worker.pid), "-o", str(out)),
                                cwd=REPO, stderr=subprocess.PIPE, text=True)
        assert wait_for_programs(True), "the profiler never loaded its program"
        time.sleep(1.0)
        prof.send_signal(sig)
        _, err = prof.communicate(timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert prof.returncode == 0, err
    assert "Traceback" not in err
    rows = parse_folded(out.read_text())
    assert sum(n for f, n in rows if "chain_leaf" in f) > 50


def test_whole_system_svg_and_no_program_left(bpf_ready, workloads, tmp_path, no_leftovers):
    worker = subprocess.Popen([workloads["fp_chain"], "15"])
    try:
        run = run_profiler("record", "-d", "1", "-o", str(tmp_path / "a.svg"))
    finally:
        worker.kill()
        worker.wait()
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "a.svg").read_bytes().startswith(b"<?xml")
    svg = (tmp_path / "a.svg").read_text()
    assert "all processes: cpu-clock at 99 Hz, 1.0 s" in svg and " lost (" in svg
    assert "chain_leaf" in svg  # and no_leftovers: nothing of this run stays loaded


def test_pid_exiting_during_the_run_keeps_its_samples(bpf_ready, workloads, tmp_path,
                                                      no_leftovers):
    worker = subprocess.Popen([workloads["fp_chain"], "60"])
    out = tmp_path / "gone.folded"
    prof = subprocess.Popen(profiler_cmd("record", "-p", str(worker.pid), "-d", "50",
                                         "-o", str(out)),
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for_programs(True), "the profiler never loaded its program"
        time.sleep(1.0)
    finally:
        worker.kill()  # the target exits mid-run
        worker.wait()
    _, err = prof.communicate(timeout=30)
    assert prof.returncode == 0, err
    assert "every target exited" in err and "Traceback" not in err
    rows = parse_folded(out.read_text())
    assert sum(n for f, n in rows if "chain_leaf" in f) > 50


def test_no_such_pid_and_command_not_found(bpf_ready, no_leftovers):
    run = run_profiler("record", "-p", "999999999", "-d", "1")
    assert run.returncode != 0 and "no such process: 999999999" in run.stderr
    _one_message(run.stderr)
    run = run_profiler("record", "--", "no-such-command-xyz")
    assert run.returncode != 0 and "command not found: no-such-command-xyz" in run.stderr
    _one_message(run.stderr)


def test_not_root_is_one_message(bpf_ready, tmp_path):
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          *profiler_cmd("record", "-d", "1", "-o", str(tmp_path / "x.svg"))],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    _one_message(run.stderr)
    assert "root" in run.stderr and "CAP_BPF" in run.stderr


def _without_bcc(tmp_path) -> dict:
    fake = tmp_path / "fake" / "bcc"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no bcc here (test)')\n")
    return dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))


def test_bcc_not_importable_is_one_message(bpf_ready, tmp_path):
    env = dict(_without_bcc(tmp_path), PROFILER_NO_PROGRAM_CACHE="1")  # must compile
    run = subprocess.run(profiler_cmd("record", "-d", "1", "-o", str(tmp_path / "x.svg")),
                         cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode != 0
    _one_message(run.stderr)
    assert "BCC" in run.stderr and "make setup" in run.stderr


def test_a_kept_program_runs_without_compiling(bpf_ready, workloads, tmp_path, no_leftovers):
    """The first run compiles and keeps the program; the next, for another
    process, loads it: no clang, and BCC's Python module is not even needed.
    A damaged kept program is compiled again, never trusted."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    first = subprocess.run(profiler_cmd("record", "-F", "499", "-o", str(tmp_path / "a.folded"),
                                        "--", workloads["fp_chain"], "1"),
                           cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr
    kept = list((tmp_path / "cache" / "profiler" / "bpf").glob("*.json"))
    assert len(kept) == 1
    env_no_bcc = dict(_without_bcc(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    second = subprocess.run(profiler_cmd("record", "-F", "499", "-o", str(tmp_path / "b.folded"),
                                         "--", workloads["fp_chain"], "1"),
                            cwd=REPO, capture_output=True, text=True, timeout=120, env=env_no_bcc)
    assert second.returncode == 0, second.stderr  # BCC could not have compiled anything
    rows = parse_folded((tmp_path / "b.folded").read_text())
    assert sum(n for f, n in rows if f[0] == "fp_chain" and "chain_leaf" in f) > 300
    kept[0].write_text(kept[0].read_text().replace('"insns": "', '"insns": "ff'))
    third = subprocess.run(profiler_cmd("record", "-F", "499", "-o", str(tmp_path / "c.folded"),
                                        "--", workloads["fp_chain"], "1"),
                           cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert third.returncode == 0, third.stderr
    assert '"insns": "ff' not in kept[0].read_text()  # compiled again, kept afresh
    assert "Traceback" not in first.stderr + second.stderr + third.stderr
    assert "bpf:" not in third.stderr and "verifier" not in third.stderr  # quiet fallback


def test_compile_failure_shows_the_compiler_message(bpf_ready, tmp_path, no_leftovers):
    tree = tmp_path / "headers"
    (tree / "include" / "linux").mkdir(parents=True)
    (tree / "include" / "linux" / "kconfig.h").write_text('#error "broken headers for a test"\n')
    env = dict(os.environ, BCC_KERNEL_SOURCE=str(tree))
    run = subprocess.run(profiler_cmd("record", "-d", "1", "-o", str(tmp_path / "x.svg")),
                         cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode != 0
    _one_message(run.stderr)
    assert "broken headers for a test" in run.stderr


def test_raw_profile_and_report(bpf_ready, workloads, tmp_path):
    raw = tmp_path / "p.json"
    run = run_profiler("record", "-F", "499", "-o", str(raw), "--", workloads["fp_chain"], "0.5")
    assert run.returncode == 0, run.stderr
    doc = json.loads(raw.read_text())
    assert doc["format"] == "profiler-raw" and doc["version"] == 1
    folded = tmp_path / "p.folded"
    run = run_profiler("report", str(raw), "-o", str(folded), "--per-pid")
    assert run.returncode == 0, run.stderr
    rows = parse_folded(folded.read_text())
    assert any(f[0].startswith("fp_chain-") and "chain_leaf" in f for f, _ in rows)
    svg = tmp_path / "p.svg"
    run = run_profiler("report", str(raw), "-o", str(svg), "--title", "My title")
    assert run.returncode == 0, run.stderr
    assert "My title" in svg.read_text()


def test_list_events_asks_the_kernel(bpf_ready):
    run = run_profiler("list-events")
    assert run.returncode == 0, run.stderr
    names = [l.split()[0] for l in run.stdout.splitlines()]
    assert "cpu-clock" in names and "page-faults" in names
    from profiler.record.events import probe, build_attr, resolve_event
    from profiler.options import Sampling
    cycles_ok = probe(build_attr(resolve_event("cycles"), Sampling()), 0) is None
    assert ("cycles" in names) == cycles_ok


def test_stdout_output_is_folded(bpf_ready, workloads):
    run = run_profiler("record", "-q", "-o", "-", "--", workloads["fp_chain"], "0.5")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert any("chain_leaf" in f for f, _ in parse_folded(run.stdout))


def test_how_the_command_ended_is_told_in_words(bpf_ready, workloads, tmp_path):
    out = tmp_path / "seg.svg"
    run = run_profiler("record", "-o", str(out), "--", "/bin/sh", "-c", "kill -SEGV $$")
    assert run.returncode == 0, run.stderr
    assert "command killed by SIGSEGV" in run.stderr and "status -" not in run.stderr
    assert "command killed by SIGSEGV" in out.read_text()  # the subtitle, with 0 samples too
    out = tmp_path / "cut.svg"
    run = run_profiler("record", "-d", "1", "-o", str(out), "--", workloads["fp_chain"], "30")
    assert run.returncode == 0, run.stderr
    told = "command killed by SIGTERM (still running when the run ended: stopped by the profiler)"
    assert told in run.stderr and told in out.read_text()
    assert "exited during the run" not in run.stderr


def test_a_rate_above_the_kernels_limit_is_refused_before_loading(bpf_ready, no_leftovers,
                                                                  tmp_path):
    limit = int(open("/proc/sys/kernel/perf_event_max_sample_rate").read())
    run = run_profiler("record", "-F", str(limit + 1), "-d", "1", "-o", str(tmp_path / "x.svg"))
    assert run.returncode == 2
    _one_message(run.stderr)
    assert f"limit of {limit}" in run.stderr and "perf_event_max_sample_rate" in run.stderr


def test_an_output_that_cannot_be_written_loses_nothing(bpf_ready, workloads, tmp_path):
    """Refused before recording when it is plain; when the directory goes
    away during the run, the recording is saved as a raw profile instead."""
    run = run_profiler("record", "-d", "1", "-o", str(tmp_path / "missing" / "x.svg"))
    assert run.returncode != 0 and "no such file or directory" in run.stderr.lower()
    _one_message(run.stderr)
    assert "samples" not in run.stderr  # nothing was recorded
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"rmdir {gone}; exec {workloads['fp_chain']} 1"
    run = run_profiler("record", "-F", "499", "-o", str(gone / "out.svg"),
                       "--", "/bin/sh", "-c", script, cwd=str(tmp_path))
    assert run.returncode != 0
    _one_message(run.stderr)
    saved = list(tmp_path.glob("out.*.raw.json"))
    assert len(saved) == 1 and str(saved[0]) in run.stderr
    folded = tmp_path / "later.folded"
    run = run_profiler("report", str(saved[0]), "-o", str(folded))
    assert run.returncode == 0, run.stderr
    assert sum(n for f, n in parse_folded(folded.read_text()) if "chain_leaf" in f) > 200


def test_list_events_without_permission_is_one_message(bpf_ready):
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          *profiler_cmd("list-events")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    if run.returncode == 0:  # a kernel that lets anyone sample (perf_event_paranoid < 1)
        assert "cpu-clock" in run.stdout
        return
    _one_message(run.stderr)
    assert "profiler: remedy:" in run.stderr and "root" in run.stderr


def test_a_reader_that_stops_early_is_no_failure(bpf_ready, workloads, tmp_path):
    """`-o - | head`: the closed pipe ends the output quietly; nothing is
    saved as if the write had failed."""
    prof = subprocess.Popen(profiler_cmd("record", "-F", "999", "-o", "-", "--",
                                         workloads["many_stacks"], "3"),
                            cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=REPO))
    first = prof.stdout.readline()
    prof.stdout.close()
    _, err = prof.communicate(timeout=60)
    assert first.strip() and b"Traceback" not in err
    assert not list(tmp_path.glob("*.raw.json")), err


def test_no_kernel_headers_is_one_message_saying_what_was_tried(bpf_ready, tmp_path,
                                                                no_leftovers):
    """/usr/src hidden in a mount namespace of the test's own: no headers."""
    script = ("mount -t tmpfs none /usr/src && exec " + " ".join(
        profiler_cmd("record", "-d", "1", "-o", str(tmp_path / "x.svg"))))
    run = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=REPO,
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PROFILER_NO_PROGRAM_CACHE="1"))
    assert run.returncode != 0
    _one_message(run.stderr)
    assert "no kernel headers" in run.stderr and "tried:" in run.stderr
    assert "/usr/src/linux-headers-" in run.stderr and "make setup" in run.stderr


def test_make_demo_profiles_its_workload_live(bpf_ready, tmp_path):
    """What `make demo` runs once setup is done: a live profile, not the
    bundled fallback."""
    run = subprocess.run([*profiler_cmd()[:2], "profiler.cli.demo"], cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert run.returncode == 0, run.stderr
    assert "cannot profile live" not in run.stderr and "Traceback" not in run.stderr
    svg = tmp_path / "demo-flamegraph.svg"
    assert run.stdout.strip() == str(svg)
    assert "demo: " in run.stderr and " 0 lost" in run.stderr
    assert svg.read_text().count("<g><title>") > 10
