"""Opening the files a profiled process names, safely.

Paths come from the processes we profile: a debuglink name, a container's
/usr/lib/debug, a perf map. Running as root, the symbolizer must not hang on
a FIFO, read /dev/zero forever, or follow a planted symlink out of a
directory the process controls: only regular files are read, and opening
never blocks.
"""
from __future__ import annotations

import os
import stat
from typing import BinaryIO

MAX_CRC_BYTES = 4 << 30  # a larger "debug file" is not worth reading to check


def open_regular(path: str, dir_fd: int | None = None, nofollow: bool = False) -> BinaryIO | None:
    """The file at `path` opened for reading if it is a regular file, else None."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    if nofollow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except (OSError, ValueError):
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return os.fdopen(fd, "rb")
    except OSError:
        pass
    os.close(fd)
    return None


def _others_can_write(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def trusted_for_cache(st: os.stat_result) -> bool:
    """A file whose symbols may be kept in (and served from) the disk cache:
    owned by root or by us and writable by no one else. Anyone else could
    forge a build-id and plant names for files we trust."""
    return st.st_uid in (0, os.geteuid()) and not _others_can_write(st)


def ours_alone(st: os.stat_result, kind: int) -> bool:
    """A cache directory or file (`kind`: stat.S_IFDIR or S_IFREG) we may
    read what we keep from: ours, and writable by no one else."""
    return st.st_uid == os.geteuid() and stat.S_IFMT(st.st_mode) == kind and \
        not _others_can_write(st)
