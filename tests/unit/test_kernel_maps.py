"""KernelMaps: executable mappings from the kernel's MMAP2/COMM/FORK records,
decoded from record bytes laid out as the kernel writes them
(include/uapi/linux/perf_event.h), and from a real ring against
/proc/PID/maps."""
from __future__ import annotations

import os
import struct
import subprocess
import time


from conftest import require
from profiler.model.maps import parse_maps
from profiler.record import kernelmaps


def _mmap2(pid, addr, length, pgoff, path, prot=5, ino=77):
    name = path.encode() + b"\0"
    name += b"\0" * (-len(name) % 8)
    body = struct.pack("=IIQQQIIQQII", pid, pid, addr, length, pgoff, 0xfe, 1, ino, 0, prot, 2)
    return 10, 0, struct.pack("=IHH", 10, 0, 8 + len(body) + len(name)) + body + name


def _comm_exec(pid, comm="prog"):
    name = comm.encode() + b"\0"
    name += b"\0" * (-len(name) % 8)
    body = struct.pack("=II", pid, pid) + name
    return 3, 1 << 13, struct.pack("=IHH", 3, 1 << 13, 8 + len(body)) + body


def _fork(pid, ppid):
    body = struct.pack("=IIIIQ", pid, ppid, pid, ppid, 0)
    return 7, 0, struct.pack("=IHH", 7, 0, 8 + len(body)) + body


def _fed(*records):
    k = kernelmaps.KernelMaps.__new__(kernelmaps.KernelMaps)  # no rings: records fed by hand
    k._rings, k._maps, k._whole, k._before, k._count, k.dropped = [], {}, set(), {}, 0, 0
    for kind, misc, record in records:
        k._take(kind, misc, record)
    return k


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
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x1000, 0, "/bin/sh"),
             _fork(11, 10), _fork(12, 10), _comm_exec(12),
             _mmap2(12, 0x7000, 0x1000, 0, "/bin/cc1"))
    assert [e.path for e in k.entries(11)] == ["/bin/sh"]
    assert [e.path for e in k.entries(12)] == ["/bin/cc1"]
    # what it ran until the exec (a sample in the execve call itself)
    assert [e.path for e in k.entries(12, before_exec=True)] == ["/bin/sh"]


def test_a_childs_exec_read_before_its_fork_still_knows_the_image_before():
    """The fork is written to the parent's CPU's ring, the child's exec and
    mappings to its own: rings are read one after the other."""
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x1000, 0, "/bin/sh"),
             _comm_exec(12), _mmap2(12, 0x7000, 0x1000, 0, "/bin/cc1"), _fork(12, 10))
    assert [e.path for e in k.entries(12)] == ["/bin/cc1"]
    assert [e.path for e in k.entries(12, before_exec=True)] == ["/bin/sh"]


def test_a_later_mapping_over_an_earlier_one_wins():
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x4000, 0, "/old.so"),
             _mmap2(10, 0x2000, 0x1000, 0, "/new.so"))
    assert [e.path for e in k.entries(10)] == ["/new.so"]


def test_lost_records_and_entries_past_the_cap_are_counted(monkeypatch):
    monkeypatch.setattr(kernelmaps, "MAX_ENTRIES", 1)
    lost = struct.pack("=IHH", 2, 0, 24) + struct.pack("=QQ", 1, 5)
    k = _fed(_comm_exec(10), _mmap2(10, 0x1000, 0x1000, 0, "/a"),
             _mmap2(10, 0x3000, 0x1000, 0, "/b"), (2, 0, lost))
    assert [e.path for e in k.entries(10)] == ["/a"] and k.dropped == 1 + 5


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


def test_lost_mapping_records_are_told_at_the_end():
    from profiler.model.raw import RawProfile, RecordingInfo
    from profiler.symbolize.summary import notes_of
    info = RecordingInfo(target="t", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=1.0, cpus=(0,), sides="both",
                         per_thread=False, started=0.0)
    raw = RawProfile(info=info, counts=(), stacks={}, processes={},
                     stats={"samples": 0, "mapping_records_lost": 3})
    assert any(n.startswith("3 of the kernel's records of processes' mappings were lost")
               for n in notes_of(raw, 0))
