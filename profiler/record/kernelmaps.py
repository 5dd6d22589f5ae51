"""Executable mappings as the kernel reports them, for processes that are
gone before their /proc/PID/maps could be read.

Reading /proc races a process that lives a few milliseconds: on a loaded
machine a build's `as`, or a script's short command, can exit before the
profiler reads its maps, and its frames go unnamed. perf does not read /proc
for new processes: the kernel reports every executable mapping, exec and
fork to a dummy event's ring buffer (PERF_RECORD_MMAP2, COMM with
COMM_EXEC, FORK). This reads the same records, one ring per CPU, and keeps
each process's executable mappings as they were built up, so that the
process tracker can fall back on them when /proc no longer has the process.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import struct
import sys

from profiler.model.maps import MapEntry
from profiler.record import events
from profiler.record.cpus import online_cpus

PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY = 1, 9
# perf_event_attr flag bits
_MMAP, _COMM, _TASK, _MMAP2, _COMM_EXEC = 1 << 8, 1 << 9, 1 << 13, 1 << 23, 1 << 24
# record types and the misc bit of an exec's COMM record
_LOST, _COMM_RECORD, _FORK, _MMAP2_RECORD = 2, 3, 7, 10
_MISC_COMM_EXEC = 1 << 13
_PROT_EXEC = 4

_HEADER = struct.Struct("=IHH")  # type, misc, size
_MMAP2_BODY = struct.Struct("=IIQQQIIQQII")  # pid tid addr len pgoff maj min ino ino_gen prot flags
_FORK_BODY = struct.Struct("=IIII")  # pid ppid tid ptid (then time)
_U64 = struct.Struct("=Q")
_DATA_HEAD, _DATA_TAIL = 1024, 1032  # offsets in struct perf_event_mmap_page

PAGES = 64  # data pages per CPU (256 KiB): a burst of execs, read every loop
MAX_ENTRIES = 1 << 18  # mappings kept in all; later ones are counted, not kept

# Entry: (start, end, file offset, "maj:min", inode, path)
Entry = tuple[int, int, int, str, int, str]


def _attr() -> events.PerfEventAttr:
    return events.PerfEventAttr(type=PERF_TYPE_SOFTWARE, config=PERF_COUNT_SW_DUMMY,
                                disabled=False,
                                extra_flags=_MMAP | _COMM | _TASK | _MMAP2 | _COMM_EXEC)


class KernelMaps:
    """The executable mappings of every process that mapped, forked or
    exec'd since it started, as the kernel reported them. Quietly nothing
    where the kernel refuses the event (no CAP_PERFMON)."""

    def __init__(self) -> None:
        self._rings: list[tuple[int, mmap.mmap]] = []
        self._maps: dict[int, tuple[Entry, ...]] = {}
        # Processes whose every executable mapping was reported: seen to
        # exec, or forked from one such. (Of one that was already running,
        # the records miss what it mapped before: /proc said that.)
        self._whole: set[int] = set()
        # What a process had mapped before its last exec: the samples taken
        # in the exec call itself still run the old image.
        self._before: dict[int, tuple[Entry, ...]] = {}
        self._count = 0  # mapping records kept (an upper bound on what is held)
        self.dropped = 0  # mappings past MAX_ENTRIES, and records the kernel lost
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
        """Take in every record the kernel has written so far."""
        for _fd, ring in self._rings:
            self._read_ring(ring)

    def _read_ring(self, ring: mmap.mmap) -> None:
        head = _U64.unpack_from(ring, _DATA_HEAD)[0]
        tail = _U64.unpack_from(ring, _DATA_TAIL)[0]
        if head == tail:
            return
        size = PAGES * mmap.PAGESIZE
        base = mmap.PAGESIZE
        while tail < head:
            at = tail % size
            header = _wrapped(ring, base, size, at, _HEADER.size)
            kind, misc, length = _HEADER.unpack(header)
            if not _HEADER.size <= length <= size:  # not a record: start over at the head
                tail = head
                break
            record = _wrapped(ring, base, size, at, length)
            self._take(kind, misc, record)
            tail += length
        _U64.pack_into(ring, _DATA_TAIL, tail)

    def _take(self, kind: int, misc: int, record: bytes) -> None:
        body = _HEADER.size
        if kind == _MMAP2_RECORD and len(record) >= body + _MMAP2_BODY.size:
            pid, _tid, addr, length, pgoff, major, minor, ino, _gen, prot, _flags = \
                _MMAP2_BODY.unpack_from(record, body)
            if not prot & _PROT_EXEC:
                return
            if self._count >= MAX_ENTRIES:
                self.dropped += 1
                return
            name = record[body + _MMAP2_BODY.size:].split(b"\0", 1)[0]
            path = sys.intern(os.fsdecode(name))
            self._maps[pid] = self._maps.get(pid, ()) + (
                (addr, addr + length, pgoff, f"{major:02x}:{minor:02x}", ino, path),)
            self._count += 1
        elif kind == _FORK and len(record) >= body + _FORK_BODY.size:
            pid, ppid, tid, _ptid = _FORK_BODY.unpack_from(record, body)
            if pid == tid and pid != ppid and ppid in self._whole:  # a new process
                parent = self._maps.get(ppid, ())
                if pid not in self._whole:
                    self._maps[pid] = parent  # shared until it maps anew
                    self._whole.add(pid)
                elif pid not in self._before:
                    # Its exec was read first (another CPU's ring): what it
                    # ran until then was its parent's image.
                    self._before[pid] = parent
        elif kind == _COMM_RECORD and misc & _MISC_COMM_EXEC and len(record) >= body + 8:
            pid, tid = struct.unpack_from("=II", record, body)
            if pid == tid:  # a new image: what was mapped before is gone
                old = self._maps.pop(pid, None)
                if old and pid in self._whole:
                    self._before[pid] = old
                self._whole.add(pid)
        elif kind == _LOST and len(record) >= body + 16:
            self.dropped += _U64.unpack_from(record, body + 8)[0]

    def entries(self, pid: int, before_exec: bool = False) -> tuple[MapEntry, ...]:
        """The process's executable mappings, as /proc/PID/maps would have
        listed them (a later mapping over an earlier one wins); () unless
        all of them were reported. `before_exec`: those of the image its
        last exec replaced."""
        if pid not in self._whole:
            return ()
        out: dict[tuple[int, int], MapEntry] = {}
        for start, end, offset, dev, ino, path in \
                (self._before if before_exec else self._maps).get(pid, ()):
            for key in [k for k in out if k[0] < end and start < k[1]]:
                del out[key]  # mapped over
            out[(start, end)] = MapEntry(start=start, end=end, perms="r-xp", offset=offset,
                                         dev=dev, inode=ino, path=path)
        return tuple(sorted(out.values(), key=lambda e: e.start))

    def close(self) -> None:
        for fd, ring in self._rings:
            with contextlib.suppress(OSError, ValueError):
                ring.close()
            with contextlib.suppress(OSError):
                os.close(fd)
        self._rings = []


def _wrapped(ring: mmap.mmap, base: int, size: int, at: int, length: int) -> bytes:
    """`length` bytes of the data area from offset `at`, across its end."""
    first = min(length, size - at)
    data = ring[base + at:base + at + first]
    if first < length:
        data += ring[base:base + length - first]
    return data
