"""KernelMaps: executable mappings from the kernel's MMAP2/COMM/FORK/EXIT
records, decoded from record bytes laid out as the kernel writes them
(include/uapi/linux/perf_event.h, each record ending in its time as
sample_id_all with PERF_SAMPLE_TIME puts it), from a ring laid out as the
kernel's (metadata page, then data that wraps), and from real rings against
/proc/PID/maps."""
from __future__ import annotations

import mmap
import os
import struct
import subprocess
import time

from conftest import require
from profiler.model.maps import parse_maps
from profiler.record import kernelmaps


def _record(kind, misc, body, t):
    body += struct.pack("=Q", t)  # the sample_id trailer: the record's time
    return t, kind, misc, struct.pack("=IHH", kind, misc, 8 + len(body)) + body


def _mmap2(pid, addr, length, pgoff, path, t=0, prot=5, ino=77):
    name = path.encode() + b"\0"
    name += b"\0" * (-len(name) % 8)
    body = struct.pack("=IIQQQIIQQII", pid, pid, addr, length, pgoff, 0xfe, 1, ino, 0, prot, 2)
    return _record(10, 0, body + name, t)


def _comm_exec(pid, t=0, comm="prog"):
    name = comm.encode() + b"\0"
    name += b"\0" * (-len(name) % 8)
    return _record(3, 1 << 13, struct.pack("=II", pid, pid) + name, t)


def _fork(pid, ppid, t=0):
    return _record(7, 0, struct.pack("=IIIIQ", pid, ppid, pid, ppid, t), t)


def _exit(pid, t=0):
    return _record(4, 0, struct.pack("=IIIIQ", pid, 1, pid, 1, t), t)


def _lost(n, t=0):
    return _record(2, 0, struct.pack("=QQ", 1, n), t)


def _fed(*records):
    k = kernelmaps.KernelMaps(open_rings=False)
    k.apply(list(records))
    return k


def _paths(entries):
    return [e.path for e in entries]


def test_an_exec_then_its_mappings_make_the_whole_image():
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x2000, 0x1000, "/bin/prog"),
             _mmap2(10, 0x9000, 0x1000, 0, "/lib/libc.so.6"),
             _mmap2(10, 0x5000, 0x1000, 0, "/data", prot=1))  # not code: not kept
    entries = k.entries(10)
    assert [(e.start, e.end, e.offset, e.path, e.dev, e.inode) for e in entries] == [
        (0x1000, 0x3000, 0x1000, "/bin/prog", "fe:01", 77),
        (0x9000, 0xA000, 0, "/lib/libc.so.6", "fe:01", 77)]
    assert all(e.executable and e.is_file for e in entries)


def test_a_process_running_before_the_records_began_is_not_described_by_them():
    """Its records miss what it mapped before: /proc is the only source."""
    k = _fed(_mmap2(20, 0x1000, 0x1000, 0, "/lib/late.so"))
    assert k.entries(20) == ()


def test_a_fork_inherits_and_an_exec_starts_over():
    k = _fed(_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/bin/sh", 2),
             _fork(11, 10, 3), _fork(12, 10, 4), _comm_exec(12, 5),
             _mmap2(12, 0x7000, 0x1000, 0, "/bin/cc1", 6),
             _mmap2(11, 0x8000, 0x1000, 0, "/lib/own.so", 7))
    assert _paths(k.entries(11)) == ["/bin/sh", "/lib/own.so"]
    assert _paths(k.entries(10)) == ["/bin/sh"]  # the child's mapping is not its parent's
    assert _paths(k.entries(12)) == ["/bin/cc1"]
    # what it ran until the exec (a sample in the execve call itself)
    assert _paths(k.entries(12, before_exec=True)) == ["/bin/sh"]


def test_records_from_several_rings_apply_in_the_order_they_happened():
    """A fork in one CPU's ring, the child's exec and mappings in another's,
    its libc mapped from a third: read ring by ring, time puts them back."""
    ring_a = [_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/bin/sh", 2),
              _fork(12, 10, 3)]
    ring_b = [_comm_exec(12, 4), _mmap2(12, 0x7000, 0x1000, 0, "/bin/cc1", 5)]
    ring_c = [_mmap2(12, 0x9000, 0x1000, 0, "/lib/libc.so.6", 6)]
    k = kernelmaps.KernelMaps(open_rings=False)
    k.apply(ring_c + ring_b + ring_a)
    assert _paths(k.entries(12)) == ["/bin/cc1", "/lib/libc.so.6"]
    assert _paths(k.entries(12, before_exec=True)) == ["/bin/sh"]


def test_a_reused_pid_is_a_new_process():
    k = _fed(_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/bin/sh", 2),
             _comm_exec(30, 3), _mmap2(30, 0x5000, 0x1000, 0, "/bin/old", 4), _exit(30, 5),
             _fork(30, 10, 6))
    assert _paths(k.entries(30)) == ["/bin/sh"] and k.entries(30, before_exec=True) == ()


def test_a_later_mapping_replaces_what_it_covers():
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x4000, 0x100000, "/old.so"),
             _mmap2(10, 0x2000, 0x1000, 0, "/new.so"))
    spans = [(e.start, e.end, e.offset, e.path) for e in k.entries(10)]
    assert spans == [(0x1000, 0x2000, 0x100000, "/old.so"), (0x2000, 0x3000, 0, "/new.so"),
                     (0x3000, 0x5000, 0x102000, "/old.so")]


def test_anonymous_code_reads_as_proc_shows_it():
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x1000, 0x1000, "//anon", ino=0))
    (entry,) = k.entries(10)
    assert entry.path == "" and entry.anonymous_code


def test_losses_and_caps_leave_the_processes_undescribed(monkeypatch):
    monkeypatch.setattr(kernelmaps, "MAX_PER_PROCESS", 2)
    k = _fed(_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/a", 2),
             _mmap2(10, 0x3000, 0x1000, 0, "/b", 3), _mmap2(10, 0x5000, 0x1000, 0, "/c", 4))
    assert k.entries(10) == () and k.dropped == 0  # not all of it: not used (a JIT, say)
    k = _fed(_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/a", 2), _lost(5, 3))
    assert k.entries(10) == () and k.dropped == 5
    k.apply([_comm_exec(10, 4), _mmap2(10, 0x1000, 0x1000, 0, "/a", 5)])
    assert _paths(k.entries(10)) == ["/a"]  # whole again from its next exec
    monkeypatch.setattr(kernelmaps, "MAX_ENTRIES", 1)
    k = _fed(_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/a", 2),
             _mmap2(10, 0x3000, 0x1000, 0, "/b", 3))
    assert k.entries(10) == () and k.dropped == 1  # past what a run keeps: told


def test_a_ring_is_read_across_its_end_and_freed():
    """A ring as the kernel lays it out: the metadata page (data_head,
    data_tail), then the data, with a record split across the data's end."""
    size = 4 * mmap.PAGESIZE
    ring = mmap.mmap(-1, mmap.PAGESIZE + size)
    records = [_comm_exec(10, 1), _mmap2(10, 0x1000, 0x1000, 0, "/bin/a-long-name", 2),
               _mmap2(10, 0x3000, 0x1000, 0, "/lib/b.so", 3)]
    start = size - len(records[0][3]) - 24  # the second record wraps
    at = start
    for _t, _k, _m, raw in records:
        for i, byte in enumerate(raw):
            ring[mmap.PAGESIZE + (at + i) % size] = byte
        at += len(raw)
    struct.pack_into("=QQ", ring, 1024, at, start)  # data_head, data_tail
    got = kernelmaps.ring_records(ring, size)
    assert [(t, kind, raw) for t, kind, _m, raw in got] == [(t, k, r) for t, k, _m, r in records]
    assert struct.unpack_from("=Q", ring, 1032)[0] == at  # freed
    assert kernelmaps.ring_records(ring, size) == []


def test_lost_mapping_records_are_told_at_the_end():
    from profiler.model.raw import RawProfile, RecordingInfo
    from profiler.symbolize.summary import notes_of
    from profiler.unwind.stacks import UnwindSummary
    info = RecordingInfo(target="t", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=1.0, cpus=(0,), sides="both",
                         per_thread=False, started=0.0)
    raw = RawProfile(info=info, counts=(), stacks={}, processes={},
                     stats={"samples": 0, "mapping_records_lost": 3})
    assert any(n.startswith("3 of the kernel's records of processes' mappings were lost")
               for n in notes_of(raw, UnwindSummary()))


def test_the_kernels_records_agree_with_proc_for_a_live_process():
    require(os.geteuid() == 0, "needs root (a system-wide perf event)")
    k = kernelmaps.KernelMaps()
    try:
        assert k, "the kernel refused the dummy event"
        child = subprocess.Popen(["sleep", "2"])
        try:
            time.sleep(0.5)
            k.read()
            with open(f"/proc/{child.pid}/maps") as f:
                proc = [e for e in parse_maps(f.read())
                        if e.executable and e.path != "[vsyscall]"]
            ours = k.entries(child.pid)
            key = lambda e: (e.start, e.end, e.offset, e.dev, e.inode, e.path)  # noqa: E731
            assert [key(e) for e in ours] == [key(e) for e in proc]
        finally:
            child.kill()
            child.wait()
    finally:
        k.close()
