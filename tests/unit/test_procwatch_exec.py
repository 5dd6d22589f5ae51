"""A process read in the middle of exec (no maps yet, or none readable) is
read again when its exec is noticed: the command launched by `record --`
is read right as it is released, racing its own execve."""
from __future__ import annotations

import os

from profiler.model.maps import read_maps
from profiler.record import procwatch


def test_an_exec_notice_reads_a_process_that_looked_gone(monkeypatch):
    pid = os.getpid()
    real = read_maps(pid)
    answers = iter([None, real])  # unreadable mid-exec, then the new image
    monkeypatch.setattr(procwatch, "read_maps", lambda p: next(answers))
    tracker = procwatch.ProcessTracker()
    tracker.snapshot(pid)
    assert tracker.entries(pid) is None  # looked gone
    tracker.notice(pid, exec_=True)
    assert tracker.entries(pid), "the exec notice read the new image"


def test_an_exec_notice_reads_a_process_that_looked_like_a_kernel_thread(monkeypatch):
    pid = os.getpid()
    real = read_maps(pid)
    answers = iter(["", real])  # no mappings yet, then the new image
    monkeypatch.setattr(procwatch, "read_maps", lambda p: next(answers))
    monkeypatch.setattr(procwatch, "_stat", lambda p: ("R", 1, procwatch.PF_KTHREAD))
    tracker = procwatch.ProcessTracker()
    tracker.snapshot(pid)
    assert not tracker.entries(pid)
    tracker.notice(pid, exec_=True)
    assert tracker.entries(pid)


def test_a_process_caught_with_a_stack_and_no_code_is_mid_exec_not_gone(monkeypatch):
    """exec closes the launcher's close-on-exec pipe (which tells the
    profiler it may read) before it maps the new program: the new memory
    holds a stack and nothing else. Such a process is read again later, by
    its rescan or by any other reason to read it (a copy of its stack that
    needs its maps), rather than given up as gone."""
    pid = os.getpid()
    real = read_maps(pid)
    stack_only = "7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]\n"
    answers = iter([stack_only, real])
    clock = [100.0]
    monkeypatch.setattr(procwatch, "read_maps", lambda p: next(answers))
    monkeypatch.setattr(procwatch, "_stat", lambda p: ("R", 1, 0))
    tracker = procwatch.ProcessTracker(clock=lambda: clock[0])
    tracker.snapshot(pid)
    assert not tracker.known(pid)
    clock[0] += procwatch.EXEC_RESCANS[0]
    tracker.service()  # the rescan: the new image
    assert tracker.entries(pid)


def test_a_zombie_without_maps_is_gone(monkeypatch):
    """...while a zombie is given up: it is not read again."""
    pid = os.getpid()
    reads = []
    stack_only = "7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]\n"
    monkeypatch.setattr(procwatch, "read_maps", lambda p: reads.append(p) or stack_only)
    monkeypatch.setattr(procwatch, "_stat", lambda p: ("Z", 1, 0))
    tracker = procwatch.ProcessTracker()
    tracker.snapshot(pid)
    tracker.snapshot(pid)
    assert reads == [pid] and not tracker.known(pid)


def test_a_process_that_stays_without_code_is_given_up_after_a_few_reads(monkeypatch):
    pid = os.getpid()
    stack_only = "7ffd1000-7ffd3000 rw-p 00000000 00:00 0                          [stack]\n"
    reads = []
    monkeypatch.setattr(procwatch, "read_maps", lambda p: reads.append(p) or stack_only)
    monkeypatch.setattr(procwatch, "_stat", lambda p: ("T", 1, 0))  # stopped mid-exec
    clock = [0.0]
    tracker = procwatch.ProcessTracker(clock=lambda: clock[0])
    tracker.snapshot(pid)
    for _ in range(20):
        clock[0] += 1.0
        tracker.service()
    assert len(reads) == len(procwatch.EXEC_RESCANS) + 1
