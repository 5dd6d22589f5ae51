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
