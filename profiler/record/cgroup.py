"""A cgroup v2 of its own for `-- COMMAND`, so its children are profiled too.

Every process the command starts inherits its cgroup, from its first
instruction; the BPF program compares bpf_get_current_cgroup_id() with the
cgroup's id (the inode number of its directory). No task_struct layout is
needed, which matters here: the kernel headers may not match the kernel.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import re

PREFIX = "profiler-"
# profiler-PID-STARTTIME: a cgroup whose owner (that pid, started at that
# time) is no longer running is stale, and a later run removes it; a live
# profiler's is never touched, even if its pid was reused.
_OWNED = re.compile(r"profiler-(\d+)(?:-(\d+))?\Z")


def _start_time(pid: int) -> int | None:
    """When the process started (clock ticks after boot), from /proc/PID/stat;
    None if it does not run (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def own_name() -> str:
    """This process's cgroup name for its command: profiler-PID-STARTTIME."""
    return f"{PREFIX}{os.getpid()}-{_start_time(os.getpid())}"


def owner_alive(name: str) -> bool:
    """Whether the profiler that created cgroup `name` still runs (True for
    names that are not ours: never touched)."""
    match = _OWNED.match(name)
    if not match:
        return True
    pid, started = int(match.group(1)), match.group(2)
    now = _start_time(pid)
    if started is None:  # the old profiler-PID: stale once that pid is gone
        return now is not None
    return now is not None and now == int(started)


def parse_cgroup2_mount(mountinfo: str) -> str | None:
    """The cgroup2 mount point in /proc/self/mountinfo text, if any."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split()[:1] == ["cgroup2"]:
            return left.split()[4]
    return None


def parse_own_cgroup(proc_cgroup: str) -> str:
    """Our path in the v2 hierarchy ("0::/path" in /proc/self/cgroup)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def available() -> bool:
    """Whether `-- COMMAND` will get a cgroup of its own (as far as can be
    told without creating one): a cgroup v2 hierarchy we may write to."""
    try:
        mount = parse_cgroup2_mount(pathlib.Path("/proc/self/mountinfo").read_text())
    except OSError:
        return False
    return mount is not None and os.access(mount, os.W_OK)


def _parents() -> list[pathlib.Path]:
    """Where our command cgroups are created: under our own cgroup, or the
    hierarchy's root."""
    try:
        mount = parse_cgroup2_mount(pathlib.Path("/proc/self/mountinfo").read_text())
        own = parse_own_cgroup(pathlib.Path("/proc/self/cgroup").read_text())
    except OSError:
        return []
    if mount is None:
        return []
    return list(dict.fromkeys((pathlib.Path(mount) / own.lstrip("/"), pathlib.Path(mount))))


def remove_stale() -> list[str]:
    """Remove the command cgroups of profilers that died without cleaning up
    (SIGKILL, a crash): processes still in one are moved out, as close()
    does. Returns the paths removed."""
    removed = []
    for parent in _parents():
        try:
            names = [e.name for e in os.scandir(parent) if e.name.startswith(PREFIX)]
        except OSError:
            continue
        for name in names:
            if not owner_alive(name):
                cgroup = CommandCgroup.__new__(CommandCgroup)
                cgroup.path = parent / name
                cgroup.close()
                if not cgroup.path.exists():
                    removed.append(str(cgroup.path))
    return removed


class CommandCgroup:
    """Created under our own cgroup (or the hierarchy's root); removed on close."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.id = path.stat().st_ino

    @classmethod
    def create(cls, name: str) -> "CommandCgroup | None":
        """None when there is no cgroup v2 hierarchy we may create one in."""
        try:
            mount = parse_cgroup2_mount(pathlib.Path("/proc/self/mountinfo").read_text())
            own = parse_own_cgroup(pathlib.Path("/proc/self/cgroup").read_text())
        except OSError:
            return None
        if mount is None:
            return None
        for parent in (pathlib.Path(mount) / own.lstrip("/"), pathlib.Path(mount)):
            path = parent / name
            try:
                path.mkdir()
            except OSError:
                continue
            return cls(path)
        return None

    def add(self, pid: int) -> bool:
        """Move `pid` in; False if the kernel refuses (the caller falls back)."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Move any process left (a daemonized child) out, then remove the cgroup."""
        with contextlib.suppress(OSError):
            parent_procs = self.path.parent / "cgroup.procs"
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    parent_procs.write_text(f"{pid}\n")
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
