"""Addresses -> names, for every kind of code a profiled process runs.

User addresses go through the process's maps snapshots: a file mapping gives
a file offset, looked up in that file's symbols (objfile: .symtab, debug
files, MiniDebugInfo, .dynsym); the [vdso] in the process's own vDSO image;
anonymous memory in the process's JIT perf map (frames get `_[j]`). Kernel
addresses go through /proc/kallsyms. Source lines and inline chains of
named frames come afterwards, in one batch per object (`source_lines`). A
frame nothing names is data,
`module+0xOFFSET`, never a bare [unknown]; whole-run problems (hidden kernel
addresses, a refused JIT map) become one warning each.
"""
from __future__ import annotations

import bisect
import os
from typing import Callable, Iterable, NamedTuple

from profiler.model.maps import MapEntry
from profiler.model.raw import OVER_STACK_LIMIT, STACK_LIMIT_FRAME, TRUNCATED, RawProfile
from profiler.options import SymbolizeOptions
from profiler.symbolize import lines, objfile, perfmap
from profiler.binary.addresses import AbsAddr, code_address, file_offset
from profiler.binary.cache import SymbolCache, default_cache
from profiler.binary.debuginfo import DEFAULT_DEBUG_DIRS
from profiler.symbolize.demangle import demangle_all
from profiler.symbolize.kallsyms import KernelSymbols, load_kernel_symbols

PathFor = Callable[[MapEntry], "str | None"]


class Frame(NamedTuple):  # a tuple: made for every distinct address, so cheap to make
    name: str
    resolved: bool
    mangled: bool = False  # a symbol name that demangling may rewrite


class _ProcessMaps:
    """A process's snapshots, newest first, each searchable by bisection."""

    def __init__(self, snapshots) -> None:
        self._snaps = []
        for snap in reversed(snapshots):
            entries = sorted(snap.entries, key=lambda e: e.start)
            self._snaps.append(([e.start for e in entries], entries))

    def find(self, address: int) -> MapEntry | None:
        for starts, entries in self._snaps:
            i = bisect.bisect_right(starts, address) - 1
            if i >= 0 and entries[i].contains(address):
                return entries[i]
        return None

    def __bool__(self) -> bool:
        return bool(self._snaps)


class Symbolizer:
    def __init__(self, profile: RawProfile, path_for: PathFor | None = None,
                 kernel: KernelSymbols | None = None, *,
                 options: SymbolizeOptions = SymbolizeOptions(),
                 cache: SymbolCache | None = None) -> None:
        """`path_for`: the files the recorder kept open, given right after a
        recording, while /proc still describes its processes; without it (a
        saved profile) files are found by the paths their maps named."""
        self._profile = profile
        self._path_for = path_for
        self._kernel = kernel
        self._options = options
        self._cache = cache if cache is not None else default_cache()
        self._maps: dict[int, _ProcessMaps] = {}
        self._objects: dict[tuple, objfile.ObjectSymbols | None] = {}
        self._entry_symbols: dict[int, tuple[bool, objfile.ObjectSymbols | None]] = {}
        self._vdso: dict[str, objfile.ObjectSymbols | None] = {}
        self._jit = {pid: perfmap.from_entries(e) for pid, e in profile.jit.items()}
        self._lines: dict[int, lines.ObjectLines | None] = {}  # id(ObjectSymbols) ->
        self._lines_keep: list[objfile.ObjectSymbols] = []  # keeps those ids valid
        self._tool: str | None | bool = False  # False: not looked for yet
        self.warnings: list[str] = []

    # ---------------------------------------------------------------- kernel

    def kernel_frame(self, address: int, leaf: bool) -> Frame:
        if address == OVER_STACK_LIMIT:
            return Frame(STACK_LIMIT_FRAME, True)
        if self._kernel is None:
            disk = self._cache if self._cache.directory else None
            self._kernel = self._cache.remember("kallsyms", lambda: load_kernel_symbols(disk))
            if self._kernel.hidden:
                self.warnings.append(
                    "kernel addresses are hidden (kernel.kptr_restrict); kernel frames read "
                    "[kernel]: run as root with kptr_restrict at 0 or 1 to name them")
        name = self._kernel.lookup(code_address(address, leaf))
        if name is None:
            return Frame(self._kernel.unresolved(address), False)
        return Frame(name, True)

    # ---------------------------------------------------------------- user

    def user_frame(self, pid: int, address: int, leaf: bool) -> Frame:
        if address == TRUNCATED:  # the copy ended before the stack did
            return Frame("[truncated]", True)
        if address == OVER_STACK_LIMIT:
            return Frame(STACK_LIMIT_FRAME, True)
        lookup = code_address(address, leaf)
        maps = self._maps.get(pid)
        if maps is None:
            proc = self._profile.processes.get(pid)
            maps = self._maps[pid] = _ProcessMaps(proc.snapshots if proc else ())
        entry = maps.find(lookup)
        if entry is None:
            return self._jit_frame(pid, lookup) or \
                Frame(f"{'[unmapped]' if maps else '[no maps]'}+0x{address:x}", False)
        key = id(entry)  # entries live as long as the profile; hashing one costs more
        if key not in self._entry_symbols:
            self._entry_symbols[key] = (entry.anonymous_code, self._symbols_for(pid, entry))
        anonymous, symbols = self._entry_symbols[key]
        if anonymous:  # a JIT's code, if its map names it
            jit = self._jit_frame(pid, lookup)
            if jit is not None:
                return jit
        if symbols is not None:
            name = symbols.name_at(file_offset(AbsAddr(lookup), entry.start, entry.offset))
            if name is None and not leaf:
                # A return address at a function's first byte: a signal
                # handler returns into its trampoline (__restore_rt), whose
                # first byte the kernel made the return address.
                hit = symbols.lookup(file_offset(AbsAddr(address), entry.start, entry.offset))
                name = hit[0] if hit is not None and hit[1] == 0 else None
            if name is not None:
                return Frame(name, True, True)
        if not anonymous:  # JIT code in a file mapping: .NET's memfd double mapping
            jit = self._jit_frame(pid, lookup)
            if jit is not None:
                return jit
        offset = file_offset(AbsAddr(address), entry.start, entry.offset)
        return Frame(f"{entry.module}+0x{offset:x}", False)

    def entry_of(self, pid: int, address: int, leaf: bool) -> MapEntry | None:
        """The mapping that holds a user frame's code, if known."""
        maps = self._maps.get(pid)
        if maps is None:
            proc = self._profile.processes.get(pid)
            maps = self._maps[pid] = _ProcessMaps(proc.snapshots if proc else ())
        return maps.find(code_address(address, leaf))

    def build_id_of(self, pid: int, entry: MapEntry) -> bytes | None:
        """The build-id of a mapped file (or the vDSO), as its symbols read it."""
        key = id(entry)
        if key not in self._entry_symbols:
            self._entry_symbols[key] = (entry.anonymous_code, self._symbols_for(pid, entry))
        symbols = self._entry_symbols[key][1]
        return symbols.build_id if symbols is not None else None

    # ---------------------------------------------------------------- lines

    def source_of(self, pid: int, address: int, leaf: bool
                  ) -> tuple[objfile.ObjectSymbols, int] | None:
        """(the object, the ELF virtual address DWARF knows the code by) of a
        user frame in a mapped file; None for anything else."""
        entry = self.entry_of(pid, address, leaf)
        if entry is None or not entry.is_file:
            return None
        key = id(entry)
        if key not in self._entry_symbols:
            self._entry_symbols[key] = (entry.anonymous_code, self._symbols_for(pid, entry))
        symbols = self._entry_symbols[key][1]
        if symbols is None or not symbols.path:
            return None
        offset = file_offset(AbsAddr(code_address(address, leaf)), entry.start, entry.offset)
        vaddr = symbols.vaddr_of(offset)
        return (symbols, vaddr) if vaddr is not None else None

    def source_lines(self, wanted: dict[int, tuple[objfile.ObjectSymbols, set[int]]]
                     ) -> dict[tuple[int, int], lines.Chain]:
        """(id(object), vaddr) -> inline chain, one batch per object
        (`wanted`: id(object) -> (object, vaddrs)). Whatever fails (no
        tool, a refused debug file, the tool failing) leaves those
        addresses without lines and says so in one warning."""
        out: dict[tuple[int, int], lines.Chain] = {}
        for key, (symbols, vaddrs) in wanted.items():
            source = self._object_lines(key, symbols)
            if source is None:
                continue
            try:
                found = source.lookup(vaddrs)
            except lines.LinesError as err:
                self.warnings.append(f"{symbols.module}: no source lines: {err}; frames have "
                                     f"names only")
                self._lines[key] = None
                continue
            out.update(((key, a), chain) for a, chain in found.items())
        return out

    def _object_lines(self, key: int, symbols: objfile.ObjectSymbols) -> lines.ObjectLines | None:
        if key in self._lines:
            return self._lines[key]
        self._lines_keep.append(symbols)
        self._lines[key] = None
        try:
            # a file replaced at the same path (a rebuild without build-id)
            # must not get the answers remembered for the one before
            st = os.stat(symbols.path) if symbols.path else None
        except OSError:
            st = None
        if st is None:
            return None
        if self._tool is False:
            self._tool = lines.find_tool()  # None: every object is read in this process
        store = lines.LinesStore(self._cache.directory)
        self._lines[key] = self._cache.remember(
            ("lines", symbols.path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
             symbols.build_id, symbols.debuglink, symbols.origin, symbols.root,
             symbols.debug_dirs),
            lambda: lines.ObjectLines(symbols, store, self._tool))
        return self._lines[key]

    def module_of(self, pid: int, address: int) -> str:
        """The short name of what holds a return address: a file's base
        name, [vdso], [anon] (JIT code), [unmapped] or [no maps]."""
        maps = self._maps.get(pid)
        if maps is None:
            proc = self._profile.processes.get(pid)
            maps = self._maps[pid] = _ProcessMaps(proc.snapshots if proc else ())
        entry = maps.find(code_address(address, False))
        if entry is None:
            return "[unmapped]" if maps else "[no maps]"
        return entry.module

    def _jit_frame(self, pid: int, lookup: int) -> Frame | None:
        jit = self._jit.get(pid)
        name = jit.lookup(lookup) if jit else None
        return Frame(name + perfmap.JIT_SUFFIX, True) if name is not None else None

    def _symbols_for(self, pid: int, entry: MapEntry) -> objfile.ObjectSymbols | None:
        if entry.path == "[vdso]":
            return self._vdso_object(pid)
        if not entry.is_file:
            return None
        root = self._root(pid)
        key = (entry.file_key, entry.file_path, root)
        if key not in self._objects:
            path = self._path(entry, root)
            self._objects[key] = objfile.load_object(
                path, origin=entry.file_path, root=root,
                debug_dirs=self._options.debug_dirs, cache=self._cache) if path else None
        return self._objects[key]

    def _vdso_object(self, pid: int) -> objfile.ObjectSymbols | None:
        """From the image copied while the process ran: another kernel's, or
        a 32-bit process's, is not ours."""
        proc = self._profile.processes.get(pid)
        digest = proc.vdso if proc else ""
        if digest not in self._vdso:
            image = self._profile.vdso_images.get(digest)
            self._vdso[digest] = objfile.object_from_bytes(
                image, "[vdso]", debug_dirs=self._options.debug_dirs,
                cache=self._cache) if image else None
        return self._vdso[digest]

    def _path(self, entry: MapEntry, root: str) -> str | None:
        """The very file the process mapped: kept open while it ran, else by
        its path (through the process's root for a container) if that still
        names the same inode; a deploy may have put another file there."""
        kept = self._path_for(entry) if self._path_for is not None else None
        if kept:
            return kept
        for path in ((root + entry.file_path) if root else None, entry.file_path):
            try:
                if path and os.stat(path).st_ino == entry.inode:
                    return path
            except OSError:
                continue
        return None

    def _root(self, pid: int) -> str:
        """/proc/PID/root for a process that was in another mount namespace,
        while that /proc entry is still its own (right after recording)."""
        proc = self._profile.processes.get(pid)
        live = self._path_for is not None and proc is not None and not proc.exited
        return f"/proc/{pid}/root" if live and proc.foreign_mounts else ""

    # ---------------------------------------------------------------- batch

    def demangle_names(self, names: Iterable[str]) -> dict[str, str]:
        """mangled -> readable for these symbol names (empty with --no-demangle)."""
        if not self._options.demangle:
            return {}
        return self._cache.remember_names(names, demangle_all)


def name_offsets(path: str, offsets: Iterable[int], *,
                 debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS, demangle: bool = True,
                 cache: SymbolCache | None = None) -> list[str]:
    """What frames at these offsets of one file read in a profile: the
    (demangled) function name, or module+0xOFFSET."""
    obj = objfile.load_object(path, debug_dirs=debug_dirs, cache=cache)
    raw = [(obj.name_at(o), o) for o in offsets]
    names = demangle_all(n for n, _o in raw if n) if demangle else {}
    return [names.get(n, n) if n else f"{obj.module}+0x{o:x}" for n, o in raw]
