"""Symbol caches: in memory per file identity, on disk per build-id.

In memory, a file is known by (device, inode, size, mtime): the same library
mapped by a hundred processes is read once, and a file replaced on disk is
read again. On disk, under $XDG_CACHE_HOME/profiler/symbols (~/.cache/...),
a file's symbol tables are kept by build-id, so the next run, or a container
running the same build from another path, skips parsing. The disk cache is
only ever a shortcut: anything unreadable in it is ignored and rebuilt.
"""
from __future__ import annotations

import json
import mmap
import os
import pwd
import stat
import struct
import tempfile
from typing import Any, Callable, Iterable

from profiler.binary.readfile import ours_alone
from profiler.binary.symtab import SymbolTable

FileIdentity = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
_MEMORY_LIMIT = 4096  # objects; profiles of huge systems stay bounded
_LEN = struct.Struct("<I")


def identity(st: os.stat_result) -> FileIdentity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def default_directory() -> str | None:
    """$XDG_CACHE_HOME/profiler/symbols (~/.cache/...), if that place is ours.

    Under `sudo -E` root would inherit a user's HOME; a cache there could be
    planted with names for root's files, so it must belong to the effective
    user and be writable by no one else; failing that, the effective user's
    own home is used, and failing that no disk cache at all."""
    euid = os.geteuid()
    bases = [os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")]
    try:
        bases.append(os.path.join(pwd.getpwuid(euid).pw_dir, ".cache"))
    except KeyError:
        pass
    for base in bases:
        if base and os.path.isabs(base) and _ours(base):
            return os.path.join(base, "profiler", "symbols")
    return None


def _ours(path: str) -> bool:
    """The path, or the nearest part of it that exists, is a directory
    owned by us and writable by no one else."""
    while True:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent
            continue
        except OSError:
            return False
        return ours_alone(st, stat.S_IFDIR)


class SymbolCache:
    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self._memory: dict[Any, Any] = {}

    # ------------------------------------------------------------ memory

    def remember(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self._memory:
            return self._memory[key]
        value = make()
        if len(self._memory) >= _MEMORY_LIMIT:
            self._memory.pop(next(iter(self._memory)))
        self._memory[key] = value
        return value

    def remember_names(self, names: Iterable[str],
                       convert: Callable[[Iterable[str]], dict[str, str]]) -> dict[str, str]:
        """name -> converted name, converting only names not seen before
        (demangling runs a process; a warm run should not pay for it)."""
        done = self._memory.setdefault("names", {})
        wanted = set(names)
        missing = [n for n in wanted if n not in done]
        if missing:
            converted = convert(missing)
            done.update({n: converted.get(n, n) for n in missing})
        return {n: done[n] for n in wanted}

    # ------------------------------------------------------------ disk

    def _path(self, build_id: bytes, kind: str) -> str | None:
        if self.directory is None or not build_id:
            return None
        h = build_id.hex()
        return os.path.join(self.directory, h[:2], f"{h[2:]}.{kind}")

    def load(self, build_id: bytes, kind: str) -> tuple[dict, dict[str, SymbolTable]] | None:
        """(metadata, tables by name) saved for this build-id, or None. The
        file is mapped, and its tables read in place."""
        path = self._path(build_id, kind)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                if not ours_alone(os.fstat(fd), stat.S_IFREG):
                    return None  # not ours alone: never trusted
                data = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
            (meta_len,) = _LEN.unpack_from(data)
            meta = json.loads(data[4:4 + meta_len])
            tables, pos = {}, 4 + meta_len
            for name, size in meta["tables"]:
                tables[name] = SymbolTable.from_buffer(data, pos, size)
                pos += size
            return meta, tables
        except (OSError, ValueError, KeyError, TypeError, struct.error, OverflowError):
            return None

    def save(self, build_id: bytes, kind: str, meta: dict, tables: dict[str, SymbolTable]) -> None:
        path = self._path(build_id, kind)
        if path is None:
            return
        blobs = {name: t.to_bytes() for name, t in tables.items()}
        meta = dict(meta, tables=[[name, len(b)] for name, b in blobs.items()])
        head = json.dumps(meta, sort_keys=True).encode()
        head += b" " * (-(4 + len(head)) % 8)  # tables start 8-aligned, to be read in place
        write_private(path, _LEN.pack(len(head)) + head + b"".join(blobs.values()))


def write_private(path: str, data: bytes) -> None:
    """Write a cache file atomically, in a directory only we can write (made
    0700 if missing). A cache is only ever a shortcut: a read-only or full
    home, or a directory not ours alone, only costs the next run its speed."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not ours_alone(os.lstat(directory), stat.S_IFDIR):
            return
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


_DEFAULT: SymbolCache | None = None


def default_cache() -> SymbolCache:
    """The process-wide cache (memory, and disk unless PROFILER_NO_SYMBOL_CACHE)."""
    global _DEFAULT
    if _DEFAULT is None:
        disk = None if os.environ.get("PROFILER_NO_SYMBOL_CACHE") else default_directory()
        _DEFAULT = SymbolCache(disk)
    return _DEFAULT
