"""Unwind the user-stack copies of live processes (`--call-graph dwarf`).

The pure unwinder (dwarf.py) asks for the CFI row of an absolute pc; this
module answers through the process's memory maps as snapshotted while it
runs: the mapping holding the pc, the file offset, the ELF vaddr through the
file's own PT_LOAD segments (the formulas of profiler/binary/addresses.py),
and the row from that file's CFI: its .eh_frame, else the .debug_frame of
its separate debug file (build-id, then debuglink), or the vDSO's own image.
Rows are cached per process and pc, tables per file, so a long run unwinds
at a steady rate.
"""
from __future__ import annotations

import bisect
import os
import time
from typing import Callable

from profiler.binary import debuginfo, elf
from profiler.binary.addresses import AbsAddr, elf_vaddr_in, file_offset
from profiler.binary.cache import SymbolCache
from profiler.binary.readfile import open_regular
from profiler.model.maps import MapEntry
from profiler.model.raw import TRUNCATED
from profiler.unwind import cfi, dwarf

MapsOf = Callable[[int], "tuple[MapEntry, ...] | None"]
PathFor = Callable[[MapEntry], "str | None"]
VdsoOf = Callable[[int], "bytes | None"]
Reread = Callable[[int], None]
_REREAD_EVERY = 0.01  # s: a process's maps are read again at most this often
_ROWS_PER_PROCESS = 1 << 16  # cached pcs; a process running more code starts over
_PROCESSES = 512  # processes whose rows are cached; the oldest goes first


class _ObjectCfi:
    """One mapped file's CFI: its own tables first, its debug file's
    .debug_frame only for a pc they do not cover (looked for once)."""

    def __init__(self, table: cfi.CfiTable | None, segments, find_debug) -> None:
        self.table = table
        self.segments = tuple((s.offset, s.vaddr, s.filesz) for s in segments)
        self._find_debug = find_debug
        self._debug: cfi.CfiTable | None | bool = False  # False: not looked for yet

    def row_at(self, offset: int) -> cfi.Row | None:
        vaddr = elf_vaddr_in(offset, self.segments)
        if vaddr is None:
            return None
        row = self.table.row_at(vaddr) if self.table is not None else None
        if row is None and self._find_debug is not None:
            if self._debug is False:
                self._debug = self._find_debug()
            if self._debug is not None:
                row = self._debug.row_at(vaddr)
        return row


_NO_CFI = _ObjectCfi(None, (), None)


class _ProcessRows:
    """pc -> row for one process, through its newest maps snapshot."""

    def __init__(self, entries: tuple[MapEntry, ...]) -> None:
        self.entries = entries
        ordered = sorted(entries, key=lambda e: e.start)
        self._starts = [e.start for e in ordered]
        self._ordered = ordered
        self.rows: dict[int, cfi.Row | None] = {}

    def entry_at(self, pc: int) -> MapEntry | None:
        i = bisect.bisect_right(self._starts, pc) - 1
        if i >= 0 and self._ordered[i].contains(pc):
            return self._ordered[i]
        return None


class CopyUnwinder:
    def __init__(self, maps_of: MapsOf, path_for: PathFor, vdso_of: VdsoOf, *,
                 reread: Reread | None = None,
                 arch: dwarf.Arch | None = None, max_depth: int = 127,
                 debug_dirs: tuple[str, ...] = debuginfo.DEFAULT_DEBUG_DIRS,
                 cache: SymbolCache | None = None) -> None:
        self._maps_of = maps_of
        self._path_for = path_for
        self._vdso_of = vdso_of
        self.arch = arch or dwarf.host_arch()
        self._reread = reread
        self._reread_at: dict[int, float] = {}
        self._max_depth = max_depth
        self._debug_dirs = debug_dirs
        self._cache = cache
        self._processes: dict[int, _ProcessRows] = {}
        self._objects: dict[tuple, _ObjectCfi] = {}
        self.truncated = 0  # samples whose copy ended before the stack did
        self.stops: dict[str, int] = {}  # why walks ended, for the summary

    def unwind(self, pid: int, ip: int, sp: int, fp: int, stack: bytes,
               lr: int = 0) -> tuple[int, ...]:
        """Leaf-first addresses of one sample's user stack; a stack cut by
        the end of the copy ends in TRUNCATED.

        Callers' addresses are return addresses, named at the byte before
        (inside the call). A pc a signal interrupted is exact instead: it is
        handed on one past itself, so that it is named, and its line found,
        at itself. Otherwise an interrupt at a function's first instruction
        would read as the function before it."""
        rows = self._rows_for(pid)
        result = dwarf.unwind_stack(ip, sp, fp, stack, rows, arch=self.arch,
                                    max_depth=self._max_depth, lr=lr)
        self.stops[result.stop] = self.stops.get(result.stop, 0) + 1
        frames = result.frames
        if result.signal_frames:
            exact = set(result.signal_frames)
            frames = tuple(pc + 1 if i in exact else pc for i, pc in enumerate(frames))
        if result.truncated:
            self.truncated += 1
            return (*frames, TRUNCATED)
        return frames

    def row_at(self, pid: int, pc: int) -> cfi.Row | None:
        """The row in force at an exact instruction address of a process."""
        return self._rows_for(pid)(pc)

    def _rows_for(self, pid: int) -> Callable[[int], cfi.Row | None]:
        self._current(pid, self._maps_of(pid) or ())

        def row(pc: int) -> cfi.Row | None:
            proc = self._processes[pid]
            hit = proc.rows.get(pc, proc)
            if hit is not proc:
                return hit
            entry = proc.entry_at(pc)
            if entry is None and self._reread is not None and self._reread_due(pid):
                self._reread(pid)
                proc = self._current(pid, self._maps_of(pid) or ())
                entry = proc.entry_at(pc)
            if entry is None:
                # Not cached: a library being mapped (ld.so after exec) is in
                # a later read of the maps, which the next lookup may make.
                return None
            obj = self._object(pid, entry)
            found = obj.row_at(file_offset(AbsAddr(pc), entry.start, entry.offset))
            if len(proc.rows) >= _ROWS_PER_PROCESS:
                proc.rows.clear()
            proc.rows[pc] = found
            return found
        return row

    def _current(self, pid: int, entries: tuple[MapEntry, ...]) -> _ProcessRows:
        """The process's rows for these maps (cached rows are dropped when
        its maps changed: a pc may now hold other code)."""
        proc = self._processes.get(pid)
        if proc is None or proc.entries is not entries:
            self._processes.pop(pid, None)
            if len(self._processes) >= _PROCESSES:
                del self._processes[next(iter(self._processes))]
            proc = self._processes[pid] = _ProcessRows(entries)
        return proc

    def _reread_due(self, pid: int) -> bool:
        """A pc outside every mapping of the newest snapshot: the maps are
        read again (at most once an interval). Just after exec, ld.so maps
        the libraries while the first samples are taken, and a copy is
        unwound some milliseconds after its sample; a garbage pc from a walk
        gone wrong costs one read per interval."""
        now = time.monotonic()
        if now - self._reread_at.get(pid, -1.0) < _REREAD_EVERY:
            return False
        self._reread_at[pid] = now
        return True

    def _object(self, pid: int, entry: MapEntry) -> _ObjectCfi:
        if entry.path == "[vdso]":
            image = self._vdso_of(pid)
            key = ("vdso", image)
            if key not in self._objects:
                self._objects[key] = self._vdso_cfi(image) if image else _NO_CFI
            return self._objects[key]
        if not entry.is_file:
            return _NO_CFI  # JIT code: the unwinder falls back to frame pointers
        key = entry.file_key
        if key not in self._objects:
            path = self._path_for(entry)
            self._objects[key] = self._file_cfi(path, entry.file_path) if path else _NO_CFI
        return self._objects[key]

    def _vdso_cfi(self, image: bytes) -> _ObjectCfi:
        try:
            head = elf.read_image_bytes(image)
            return _ObjectCfi(cfi.cfi_from_bytes(image), head.segments, None)
        except Exception:  # a damaged image unwinds by frame pointers
            return _NO_CFI

    def _file_cfi(self, path: str, origin: str) -> _ObjectCfi:
        stream = open_regular(path)
        if stream is None:
            return _NO_CFI
        with stream:
            head = elf.read_image(stream, tables=False)
            if not head.readable:
                return _NO_CFI
            stream.seek(0)
            table = cfi.cfi_from_file(stream, cache=self._cache, build_id=head.build_id)
            stream.seek(0)
            link = elf.read_debuglink(stream)
        build_id = head.build_id
        dirs = self._debug_dirs

        def find_debug() -> cfi.CfiTable | None:
            candidates = debuginfo.build_id_paths(build_id, dirs) if build_id else []
            if link:
                candidates += debuginfo.debuglink_paths(os.path.dirname(origin), link[0], dirs)
            for candidate in candidates:
                found = _debug_cfi(candidate, build_id)
                if found is not None:
                    return found
            return None

        return _ObjectCfi(table, head.segments, find_debug)


def _debug_cfi(path: str, build_id: bytes | None) -> cfi.CfiTable | None:
    """The CFI of a separate debug file, if it belongs to this build."""
    stream = open_regular(path)
    if stream is None:
        return None
    with stream:
        head = elf.read_image(stream, tables=False)
        if not head.readable or (build_id and head.build_id and head.build_id != build_id):
            return None
        stream.seek(0)
        return cfi.cfi_from_file(stream)
