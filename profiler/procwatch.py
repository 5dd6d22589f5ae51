"""Snapshot processes while they are alive (DESIGN rule 5).

For each process the recording sees, the executable mappings of
/proc/PID/maps are saved the first time it is seen and again whenever they
change, and every mapped file is kept open (through /proc/PID/map_files, so a
deleted or namespaced file is still reachable) until symbolizing is done.
A process that exits mid-run therefore keeps its symbols. Its vDSO image is
copied, and its JIT perf map kept open and read at the end of the run (with
the entries written late), the same way.
"""
from __future__ import annotations

import contextlib
import os
import time
import zlib
from typing import Callable

from profiler.maps import MapEntry, parse_maps, read_maps
from profiler.model import MapsSnapshot, ProcessInfo
from profiler.symbolize import perfmap
from profiler.symbolize.vdso import read_vdso

EXEC_RESCANS = (0.02, 0.2, 0.6)  # after exec, ld.so maps the libraries from user space


def alive(pid: int) -> bool:
    """True while the process runs (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _other_mount_namespace(pid: int) -> bool:
    """True for a process that sees another file system than ours (a container)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


class FileKeeper:
    """Open file descriptors for mapped files, keyed by (device, inode); the
    processes' vDSO images and JIT perf maps."""

    def __init__(self) -> None:
        self._fds: dict[tuple[str, int], int] = {}
        self._vdso: dict[int, str] = {}  # pid -> key of its vDSO image
        self._images: dict[bytes, str] = {}  # image -> key: one copy of each
        self._perf_maps: dict[int, int] = {}  # pid -> descriptor
        self._refused: set[int] = set()
        self.warnings: list[str] = []

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

    def keep_vdso(self, pid: int, entry: MapEntry) -> None:
        if pid not in self._vdso:
            image = read_vdso(pid, entry)
            if image:
                if image not in self._images:  # keys: a checksum, made unique
                    key = f"{zlib.crc32(image):08x}-{len(self._images)}"
                    self._images[image] = key
                self._vdso[pid] = self._images[image]

    def vdso_digest(self, pid: int) -> str:
        return self._vdso.get(pid, "")

    def vdso_image(self, pid: int) -> bytes | None:
        """The process's vDSO image (its CFI unwinds through it)."""
        key = self._vdso.get(pid)
        if key is None:
            return None
        return next((image for image, k in self._images.items() if k == key), None)

    def vdso_images(self) -> dict[str, bytes]:
        return {key: image for image, key in self._images.items()}

    def keep_perf_map(self, pid: int) -> None:
        """Open the process's JIT map if it has one now (tried again later if not)."""
        if pid in self._perf_maps or pid in self._refused:
            return
        try:
            fd = perfmap.open_perf_map(pid)
        except perfmap.PerfMapRefused as refused:
            self._refused.add(pid)
            self.warnings.append(str(refused))
            return
        if fd is not None:
            self._perf_maps[pid] = fd

    def perf_maps(self) -> dict[int, perfmap.PerfMap]:
        """Every kept map as written by now, late entries included."""
        maps, budget, dropped = {}, perfmap.MAX_PERF_MAP_MEMORY, {}
        for pid, fd in sorted(self._perf_maps.items()):  # one budget for all of them
            maps[pid], dropped[pid] = perfmap.read_fd(fd, budget=max(budget, 0))
            budget -= sum(perfmap.ENTRY_COST + len(n) + 40 for n in maps[pid].names)
        over = {pid: n for pid, n in dropped.items() if n}
        if over:
            self.warnings.append(
                f"JIT maps hold more than {perfmap.MAX_PERF_MAP_MEMORY >> 20} MB of entries: "
                f"{sum(over.values())} lines beyond that were not read (process "
                f"{', '.join(map(str, sorted(over)))}), so some JIT frames may be unnamed")
        return maps

    def close(self) -> None:
        for fd in [*self._fds.values(), *self._perf_maps.values()]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._perf_maps.clear()

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
        self._foreign: set[int] = set()  # processes in another mount namespace

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
        if any(e.anonymous_code for e in entries):
            self.files.keep_perf_map(pid)
        if pid not in self._snapshots:
            self._snapshots[pid] = []
            if _other_mount_namespace(pid):
                self._foreign.add(pid)
        history = self._snapshots[pid]
        if history and history[-1].entries == entries:
            return
        for entry in entries:
            if entry.path == "[vdso]":
                self.files.keep_vdso(pid, entry)
            else:
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

    def finish(self) -> None:
        """At the end of the run: JIT maps of live processes that wrote theirs late."""
        for pid, history in self._snapshots.items():
            if pid not in self._gone and any(e.anonymous_code for e in history[-1].entries):
                self.files.keep_perf_map(pid)

    def entries(self, pid: int) -> tuple[MapEntry, ...] | None:
        """The newest executable mappings of a process, read now if it was
        never seen (a stack copy can arrive before its process's notice)."""
        if pid not in self._snapshots and pid not in self._kernel_threads:
            self.snapshot(pid)
        history = self._snapshots.get(pid)
        return history[-1].entries if history else None

    def known(self, pid: int) -> bool:
        return pid in self._snapshots or pid in self._kernel_threads

    def processes(self) -> dict[int, ProcessInfo]:
        pids = set(self._snapshots) | self._kernel_threads
        return {pid: ProcessInfo(pid=pid, snapshots=tuple(self._snapshots.get(pid, ())),
                                 kernel_thread=pid in self._kernel_threads,
                                 exited=pid in self._gone or not alive(pid),
                                 foreign_mounts=pid in self._foreign,
                                 vdso=self.files.vdso_digest(pid))
                for pid in sorted(pids)}
