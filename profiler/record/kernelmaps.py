"""Executable mappings as the kernel reports them, for processes that are
gone before their /proc/PID/maps could be read.

Reading /proc races a process that lives a few milliseconds: on a loaded
machine a build's `as`, or a script's short command, can exit before the
profiler reads its maps, and its frames go unnamed. perf does not read /proc
for new processes: the kernel reports every executable mapping, exec, fork
and exit to a dummy event's ring buffer (PERF_RECORD_MMAP2, COMM with
COMM_EXEC, FORK, EXIT). This reads the same records, one ring per CPU,
applies them in the order they happened (each carries its time: a child's
exec may sit in another CPU's ring than its fork), and keeps each process's
executable mappings, so that the process tracker can fall back on them when
/proc no longer has the process.
"""
from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import struct
import sys

from profiler.model.maps import MapEntry
from profiler.record import events
from profiler.record.cpus import online_cpus

PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY = 1, 9
PERF_SAMPLE_TIME = 1 << 2
# perf_event_attr flag bits
_MMAP, _COMM, _TASK, _SAMPLE_ID_ALL, _MMAP2, _COMM_EXEC = \
    1 << 8, 1 << 9, 1 << 13, 1 << 18, 1 << 23, 1 << 24
# record types and the misc bit of an exec's COMM record
_LOST, _COMM_RECORD, _EXIT, _FORK, _MMAP2_RECORD = 2, 3, 4, 7, 10
_MISC_COMM_EXEC = 1 << 13
_PROT_EXEC = 4

_HEADER = struct.Struct("=IHH")  # type, misc, size
_MMAP2_BODY = struct.Struct("=IIQQQIIQQII")  # pid tid addr len pgoff maj min ino ino_gen prot flags
_TASK_BODY = struct.Struct("=IIII")  # FORK, EXIT: pid ppid tid ptid (then time)
_U64 = struct.Struct("=Q")
_TRAILER = 8  # sample_id_all with PERF_SAMPLE_TIME: each record ends in its time
_DATA_HEAD, _DATA_TAIL = 1024, 1032  # offsets in struct perf_event_mmap_page

PAGES = 64  # data pages per CPU (256 KiB): a burst of execs, read every loop
MAX_ENTRIES = 1 << 18  # mapping records kept in all
MAX_PER_PROCESS = 4096  # a JIT that flips its code's protection reports each flip

# Entry: (start, end, file offset, "maj:min", inode, path)
Entry = tuple[int, int, int, str, int, str]


def _attr() -> events.PerfEventAttr:
    return events.PerfEventAttr(
        type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_DUMMY, disabled=False,
        sample_type=PERF_SAMPLE_TIME,
        extra_flags=_MMAP | _COMM | _TASK | _SAMPLE_ID_ALL | _MMAP2 | _COMM_EXEC)


class KernelMaps:
    """The executable mappings of every process that mapped, forked or
    exec'd since it started, as the kernel reported them. Quietly nothing
    where the kernel refuses the event (no CAP_PERFMON)."""

    def __init__(self, open_rings: bool = True) -> None:
        self._rings: list[tuple[int, mmap.mmap]] = []
        self._maps: dict[int, list[Entry]] = {}
        # Processes whose every executable mapping was reported: seen to
        # exec, or forked from one such. (Of one that was already running,
        # the records miss what it mapped before: /proc said that.)
        self._whole: set[int] = set()
        # What a process had mapped before its last exec: the samples taken
        # in the exec call itself still run the old image.
        self._before: dict[int, list[Entry]] = {}
        self._exited: set[int] = set()  # a later fork of the same pid is a new process
        self._count = 0  # mapping records kept (an upper bound on what is held)
        # Records the kernel lost, and mappings past MAX_ENTRIES: processes
        # that lived only milliseconds may then go unnamed. (A process past
        # MAX_PER_PROCESS, a JIT flipping its code's protection, is simply
        # not described: it lives long enough for /proc.)
        self.dropped = 0
        if open_rings:
            self._open()

    def _open(self) -> None:
        attr = _attr()
        for cpu in online_cpus():
            try:
                fd = events.perf_event_open(attr, -1, cpu)
            except OSError:
                continue
            try:
                ring = mmap.mmap(fd, (PAGES + 1) * mmap.PAGESIZE, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError:
                os.close(fd)
                continue
            self._rings.append((fd, ring))

    def __bool__(self) -> bool:
        return bool(self._rings)

    def read(self) -> None:
        """Take in every record the kernel has written so far, in time order."""
        records = []
        for _fd, ring in self._rings:
            records += ring_records(ring, PAGES * mmap.PAGESIZE)
        self.apply(records)

    def apply(self, records: list[tuple[int, int, int, bytes]]) -> None:
        """(time, type, misc, record) from any number of rings."""
        records.sort(key=lambda r: r[0])  # stable: a ring's own order kept at equal times
        for _time, kind, misc, record in records:
            self._take(kind, misc, record)

    def _take(self, kind: int, misc: int, record: bytes) -> None:
        body = _HEADER.size
        if kind == _MMAP2_RECORD and len(record) >= body + _MMAP2_BODY.size:
            pid, _tid, addr, length, pgoff, major, minor, ino, _gen, prot, _flags = \
                _MMAP2_BODY.unpack_from(record, body)
            if not prot & _PROT_EXEC:
                return
            kept = self._maps.setdefault(pid, [])
            if self._count >= MAX_ENTRIES or len(kept) >= MAX_PER_PROCESS:
                self.dropped += self._count >= MAX_ENTRIES
                self._whole.discard(pid)  # what it has now is not all of it
                return
            name = record[body + _MMAP2_BODY.size:len(record) - _TRAILER].split(b"\0", 1)[0]
            path = "" if name == b"//anon" else sys.intern(os.fsdecode(name))
            kept.append((addr, addr + length, pgoff, f"{major:02x}:{minor:02x}", ino, path))
            self._count += 1
        elif kind == _FORK and len(record) >= body + _TASK_BODY.size:
            pid, ppid, tid, _ptid = _TASK_BODY.unpack_from(record, body)
            if pid != tid or pid == ppid:
                return  # a thread
            if pid in self._exited:  # the pid reused: forget the process that had it
                self._exited.discard(pid)
                for table in (self._maps, self._before):
                    table.pop(pid, None)
                self._whole.discard(pid)
            if ppid in self._whole and pid not in self._whole:
                self._maps[pid] = list(self._maps.get(ppid, ()))
                self._whole.add(pid)
        elif kind == _EXIT and len(record) >= body + _TASK_BODY.size:
            pid, _ppid, tid, _ptid = _TASK_BODY.unpack_from(record, body)
            if pid == tid:
                self._exited.add(pid)
        elif kind == _COMM_RECORD and misc & _MISC_COMM_EXEC and len(record) >= body + 8:
            pid, tid = struct.unpack_from("=II", record, body)
            if pid == tid:  # a new image: what was mapped before is gone
                old = self._maps.pop(pid, None)
                if old is not None and pid in self._whole:
                    self._before[pid] = old
                else:
                    self._before.pop(pid, None)
                self._whole.add(pid)
        elif kind == _LOST and len(record) >= body + 16:
            self.dropped += _U64.unpack_from(record, body + 8)[0]
            self._whole.clear()  # an exec or a mapping may be among them

    def entries(self, pid: int, before_exec: bool = False) -> tuple[MapEntry, ...]:
        """The process's executable mappings, as /proc/PID/maps would have
        listed them (a later mapping over an earlier one replaces what it
        covers); () unless all of them were reported. `before_exec`: those
        of the image its last exec replaced."""
        if pid not in self._whole:
            return ()
        starts: list[int] = []
        spans: list[Entry] = []
        for new in (self._before if before_exec else self._maps).get(pid, ()):
            start, end = new[0], new[1]
            i = max(0, bisect.bisect_right(starts, start) - 1)
            while i < len(spans) and spans[i][0] < end:
                old = spans[i]
                if old[1] <= start:
                    i += 1
                    continue
                del starts[i], spans[i]
                parts = []
                if old[0] < start:  # the part below the new mapping stays
                    parts.append((old[0], start, old[2], *old[3:]))
                if old[1] > end:  # and the part above it, at its own offset
                    parts.append((end, old[1], old[2] + end - old[0], *old[3:]))
                for part in reversed(parts):
                    starts.insert(i, part[0])
                    spans.insert(i, part)
                i += len(parts)
            at = bisect.bisect_left(starts, start)
            starts.insert(at, start)
            spans.insert(at, new)
        return tuple(MapEntry(start=s, end=e, perms="r-xp", offset=off, dev=dev, inode=ino,
                              path=path) for s, e, off, dev, ino, path in spans)

    def close(self) -> None:
        for fd, ring in self._rings:
            with contextlib.suppress(OSError, ValueError):
                ring.close()
            with contextlib.suppress(OSError):
                os.close(fd)
        self._rings = []


def ring_records(ring, size: int) -> list[tuple[int, int, int, bytes]]:
    """(time, type, misc, record) of every record in a perf ring (the
    metadata page, then `size` bytes of data), which it then frees."""
    head = _U64.unpack_from(ring, _DATA_HEAD)[0]
    tail = _U64.unpack_from(ring, _DATA_TAIL)[0]
    out = []
    base = mmap.PAGESIZE
    while tail < head:
        at = tail % size
        kind, misc, length = _HEADER.unpack(_wrapped(ring, base, size, at, _HEADER.size))
        if not _HEADER.size + _TRAILER <= length <= size:  # not a record: skip to the head
            tail = head
            break
        record = _wrapped(ring, base, size, at, length)
        out.append((_U64.unpack_from(record, length - _TRAILER)[0], kind, misc, record))
        tail += length
    _U64.pack_into(ring, _DATA_TAIL, tail)
    return out


def _wrapped(ring, base: int, size: int, at: int, length: int) -> bytes:
    """`length` bytes of the data area from offset `at`, across its end."""
    first = min(length, size - at)
    data = bytes(ring[base + at:base + at + first])
    if first < length:
        data += bytes(ring[base:base + length - first])
    return data
