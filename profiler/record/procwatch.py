"""Snapshot processes while they are alive (DESIGN rule 5).

For each process the recording sees, the executable mappings of
/proc/PID/maps are saved the first time it is seen and again whenever they
change, and every mapped file is kept open (through /proc/PID/map_files, so a
deleted or namespaced file is still reachable) until symbolizing is done.
A process that exits mid-run therefore keeps its symbols. Its vDSO image is
copied, and its JIT perf map kept open and read at the end of the run (with
the entries written late), the same way. A process gone before it could be
read (it lived a few milliseconds) gets the maps the kernel reported while
it ran (kernelmaps.py), when those are whole.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
import zlib
from typing import Callable

from profiler.model.maps import MapEntry, parse_maps, read_maps
from profiler.model.raw import MapsSnapshot, ProcessInfo
from profiler.record.kernelmaps import KernelMaps
from profiler.symbolize import perfmap
from profiler.symbolize.vdso import read_vdso

EXEC_RESCANS = (0.02, 0.2, 0.6)  # after exec, ld.so maps the libraries from user space
PF_KTHREAD = 0x00200000  # /proc/PID/stat flags: a kernel thread
INHERIT_DEPTH = 8  # parents looked through for a snapshot to inherit


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, flags) from /proc/PID/stat; a zombie still has it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1]), int(fields[6])
    except (OSError, IndexError, ValueError):
        return None


class ForkWatch:
    """Child -> parent for every fork, from the kernel's process connector
    (netlink, root only; quietly nothing without it). /proc/PID/stat names a
    parent only while the child exists; a child that forks, runs and is
    reaped between two polls is known only from this."""

    LIMIT = 1 << 16  # children remembered, the oldest forgotten first
    _NETLINK_CONNECTOR, _CN_IDX_PROC, _CN_VAL_PROC = 11, 1, 1
    _LISTEN, _EVENT_FORK = 1, 1

    def __init__(self) -> None:
        self.parents: dict[int, int] = {}
        try:
            sock = socket.socket(socket.AF_NETLINK,
                                 socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 self._NETLINK_CONNECTOR)
        except (OSError, AttributeError):
            self._sock = None
            return
        try:
            sock.bind((0, self._CN_IDX_PROC))
            op = struct.pack("=I", self._LISTEN)
            cn = struct.pack("=IIIIHH", self._CN_IDX_PROC, self._CN_VAL_PROC, 0, 0, len(op), 0)
            sock.send(struct.pack("=IHHII", 16 + len(cn) + len(op), 3, 0, 0, 0) + cn + op)
        except OSError:
            sock.close()
            sock = None
        self._sock = sock

    def read(self) -> None:
        """Take the fork events queued so far."""
        while self._sock is not None:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:  # ENOBUFS: events were lost; read on
                continue
            at = 0
            while at + 16 + 20 + 32 <= len(data):
                length = struct.unpack_from("=I", data, at)[0]
                event = at + 16 + 20
                if struct.unpack_from("=I", data, event)[0] == self._EVENT_FORK:
                    _ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", data, event + 16)
                    if cpid == ctgid:  # a process, not a thread
                        self.parents[ctgid] = ptgid
                        if len(self.parents) > self.LIMIT:
                            del self.parents[next(iter(self.parents))]
                if length < 16:
                    break
                at += (length + 3) & ~3

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def alive(pid: int) -> bool:
    """True while the process runs (a zombie has exited)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


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

    def inherit_vdso(self, pid: int, digest: str) -> None:
        """A forked child maps its parent's vDSO."""
        self._vdso.setdefault(pid, digest)

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
    """A process whose maps cannot be read any more (it exited, or is a
    zombie) inherits its parent's last snapshot: a child that forked, ran and
    exited between two scans ran the code it inherited. Its parent comes from
    /proc/PID/stat while the child exists, else from the fork events of a
    ForkWatch (`watch_forks`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 watch_forks: bool = False) -> None:
        self._clock = clock
        self._t0 = clock()
        self.files = FileKeeper()
        self._forks = ForkWatch() if watch_forks else None
        self._kernel_maps = KernelMaps() if watch_forks else None
        self.inherited: set[int] = set()  # processes whose maps are their parent's
        self._snapshots: dict[int, list[MapsSnapshot]] = {}
        self._kernel_threads: set[int] = set()
        self._gone: set[int] = set()
        self._due: dict[int, list[float]] = {}
        self._mid_exec: dict[int, int] = {}  # reads that found a process mid-exec
        self._foreign: set[int] = set()  # processes in another mount namespace

    def notice(self, pid: int, exec_: bool = False) -> None:
        """A process was seen for the first time, or replaced its image."""
        if exec_:
            # It runs a new image: a read that found no maps (caught in the
            # middle of exec: the launched command is read right as it is
            # released) said nothing about what it runs now.
            self._gone.discard(pid)
            self._kernel_threads.discard(pid)
            self.inherited.discard(pid)
        self.snapshot(pid)
        if exec_:
            now = self._clock()
            self._due.setdefault(pid, []).extend(now + d for d in EXEC_RESCANS)

    def snapshot(self, pid: int, _depth: int = 0) -> None:
        if pid <= 0 or pid in self._gone:
            return
        text = read_maps(pid)
        if text is None:
            self._gone.add(pid)
            if not self._from_kernel(pid):
                self._inherit(pid, None, _depth)
            return
        entries = tuple(e for e in parse_maps(text) if e.executable)
        if not entries:
            stat = _stat(pid)
            if stat is None or stat[2] & PF_KTHREAD:
                self._kernel_threads.add(pid)
            elif text.strip() and stat[0] not in "ZX" and \
                    self._mid_exec.get(pid, 0) < len(EXEC_RESCANS):
                # In the middle of an exec: its new memory has a stack and
                # no code yet. Not gone: read again (its exec notice, and
                # the rescans after it, will), a few times at most.
                self._mid_exec[pid] = self._mid_exec.get(pid, 0) + 1
                self._due.setdefault(pid, []).append(self._clock() + EXEC_RESCANS[0])
            else:  # a user process whose memory is gone: exiting, or a zombie
                self._gone.add(pid)
                if not self._from_kernel(pid):
                    self._inherit(pid, stat[1], _depth)
            return
        if any(e.anonymous_code for e in entries):
            self.files.keep_perf_map(pid)
        self._record(pid, entries)

    def _from_kernel(self, pid: int) -> bool:
        """A process gone from /proc: its maps as the kernel reported them
        while it ran. Only a process whose every mapping was reported has
        them, so they hold at least what any read of /proc found since its
        exec: a read while ld.so was still mapping libraries found less."""
        if not self._kernel_maps:
            return False
        self._kernel_maps.read()
        entries = self._kernel_maps.entries(pid)
        if not entries:
            return False
        self._record(pid, entries)
        return True

    def _record(self, pid: int, entries: tuple[MapEntry, ...]) -> None:
        """A new snapshot of the process, unless the last one is the same.
        Before the first one, the image an exec replaced during the run, as
        the kernel reported it: its samples in the exec call itself still
        run that image."""
        if pid not in self._snapshots:
            self._snapshots[pid] = []
            if _other_mount_namespace(pid):
                self._foreign.add(pid)
            if self._kernel_maps:
                self._kernel_maps.read()
                before = self._kernel_maps.entries(pid, before_exec=True)
                if before:
                    self._append(pid, before, old_image=True)
        self._append(pid, entries)

    def _append(self, pid: int, entries: tuple[MapEntry, ...], old_image: bool = False) -> None:
        history = self._snapshots[pid]
        if history and history[-1].entries == entries:
            return
        for entry in entries:
            if entry.path == "[vdso]":
                if not old_image:  # the process's memory is its new image's now
                    self.files.keep_vdso(pid, entry)
            else:
                self.files.keep(pid, entry)
        history.append(MapsSnapshot(time=round(self._clock() - self._t0, 6), entries=entries))

    def _inherit(self, pid: int, parent: int | None, depth: int) -> None:
        """Seed a gone process with the last snapshot of its parent (found
        now if needed), unless it has snapshots of its own."""
        if self._snapshots.get(pid) or depth >= INHERIT_DEPTH:
            return
        if parent is None and self._forks is not None:
            self._forks.read()
            parent = self._forks.parents.get(pid)
        if parent is None or parent <= 1 or parent == os.getpid():
            return
        if not self._snapshots.get(parent):
            self.snapshot(parent, depth + 1)
        history = self._snapshots.get(parent)
        if not history:
            return
        self._snapshots[pid] = [history[-1]]
        self.inherited.add(pid)
        if parent in self._foreign:
            self._foreign.add(pid)
        digest = self.files.vdso_digest(parent)
        if digest:
            self.files.inherit_vdso(pid, digest)

    def stop_watching(self) -> None:
        """No more fork or mapping events (the run is over)."""
        if self._forks is not None:
            self._forks.close()
        if self._kernel_maps is not None:
            self._kernel_maps.close()

    def service(self) -> None:
        """Take the rescans that are due."""
        if self._forks is not None:
            self._forks.read()
        if self._kernel_maps:
            self._kernel_maps.read()  # a ring per CPU: 256 KiB of records at most
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
        self.stop_watching()
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

    @property
    def mapping_records_lost(self) -> int:
        """The kernel's mapping records lost or past the limit we keep."""
        return self._kernel_maps.dropped if self._kernel_maps is not None else 0

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
