"""Snapshot processes while they are alive (DESIGN rule 5).

For each process the recording sees, the executable mappings of
/proc/PID/maps are saved the first time it is seen and again whenever they
change, and every mapped file is kept open (through /proc/PID/map_files, so a
deleted or namespaced file is still reachable) until symbolizing is done.
A process that exits mid-run therefore keeps its symbols.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable

from profiler.maps import MapEntry, parse_maps, read_maps
from profiler.model import MapsSnapshot, ProcessInfo

EXEC_RESCANS = (0.02, 0.2, 0.6)  # after exec, ld.so maps the libraries from user space


def alive(pid: int) -> bool:
    """True while the process runs (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class FileKeeper:
    """Open file descriptors for mapped files, keyed by (device, inode)."""

    def __init__(self) -> None:
        self._fds: dict[tuple[str, int], int] = {}

    def keep(self, pid: int, entry: MapEntry) -> None:
        if not entry.is_file or entry.file_key in self._fds:
            return
        for path in (f"/proc/{pid}/map_files/{entry.start:x}-{entry.end:x}", entry.file_path):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            st = os.fstat(fd)
            if st.st_ino != entry.inode:  # the path now names another file
                os.close(fd)
                continue
            self._fds[entry.file_key] = fd
            return

    def path_for(self, entry: MapEntry) -> str | None:
        """A path that opens the very file `entry` mapped, if we could keep it."""
        fd = self._fds.get(entry.file_key)
        return f"/proc/self/fd/{fd}" if fd is not None else None

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __len__(self) -> int:
        return len(self._fds)


class ProcessTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self.files = FileKeeper()
        self._snapshots: dict[int, list[MapsSnapshot]] = {}
        self._kernel_threads: set[int] = set()
        self._gone: set[int] = set()
        self._due: dict[int, list[float]] = {}

    def notice(self, pid: int, exec_: bool = False) -> None:
        """A process was seen for the first time, or replaced its image."""
        self.snapshot(pid)
        if exec_:
            now = self._clock()
            self._due.setdefault(pid, []).extend(now + d for d in EXEC_RESCANS)

    def snapshot(self, pid: int) -> None:
        if pid <= 0 or pid in self._gone:
            return
        text = read_maps(pid)
        if text is None:
            self._gone.add(pid)
            return
        entries = tuple(e for e in parse_maps(text) if e.executable)
        if not entries:
            self._kernel_threads.add(pid)
            return
        history = self._snapshots.setdefault(pid, [])
        if history and history[-1].entries == entries:
            return
        for entry in entries:
            self.files.keep(pid, entry)
        history.append(MapsSnapshot(time=round(self._clock() - self._t0, 6), entries=entries))

    def service(self) -> None:
        """Take the rescans that are due."""
        now = self._clock()
        for pid in list(self._due):
            times = self._due[pid]
            if any(t <= now for t in times):
                self._due[pid] = [t for t in times if t > now]
                self.snapshot(pid)
            if not self._due[pid]:
                del self._due[pid]

    def refresh(self, pids) -> None:
        """Read the maps of these (recently sampled) processes again."""
        for pid in pids:
            if pid not in self._kernel_threads:
                self.snapshot(pid)

    def known(self, pid: int) -> bool:
        return pid in self._snapshots or pid in self._kernel_threads

    def processes(self) -> dict[int, ProcessInfo]:
        pids = set(self._snapshots) | self._kernel_threads
        return {pid: ProcessInfo(pid=pid, snapshots=tuple(self._snapshots.get(pid, ())),
                                 kernel_thread=pid in self._kernel_threads,
                                 exited=pid in self._gone or not alive(pid))
                for pid in sorted(pids)}
