"""Addresses -> names: kernel by kallsyms, user through the maps snapshots,
file offset, PT_LOAD segment and ELF symbols. A frame that cannot be named
is data, `module+0xOFFSET` (file offset for files), never a bare [unknown].
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

from profiler.maps import MapEntry, find_entry
from profiler.model import RawProfile
from profiler.symbolize import elf as elfmod
from profiler.symbolize.addresses import AbsAddr, file_offset
from profiler.symbolize.demangle import demangle_all
from profiler.symbolize.kallsyms import KernelSymbols, read_kallsyms
from profiler.unwind.stacks import StackSample

PathFor = Callable[[MapEntry], "str | None"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SymbolizedSample:
    pid: int
    tid: int
    comm: str
    user: tuple[str, ...]  # root first
    kernel: tuple[str, ...]  # root first, without the _[k] suffix
    count: int


@dataclasses.dataclass(frozen=True)
class Frame:
    name: str
    resolved: bool


def _original_path(entry: MapEntry) -> str | None:
    return entry.file_path if os.path.exists(entry.file_path) else None


class Symbolizer:
    def __init__(self, profile: RawProfile, path_for: PathFor | None = None,
                 kernel: KernelSymbols | None = None) -> None:
        self._profile = profile
        self._path_for = path_for or _original_path
        self._kernel = kernel
        self._elves: dict[tuple[str, int], elfmod.ElfSymbols | None] = {}
        self._vdso: elfmod.ElfSymbols | None | bool = False
        self.unresolved = 0  # frames named module+offset

    # ---------------------------------------------------------------- kernel

    def kernel_frame(self, address: int, leaf: bool) -> Frame:
        if self._kernel is None:
            self._kernel = read_kallsyms()
        # A return address may lie just past a call at the end of a function.
        name = self._kernel.lookup(address if leaf else address - 1)
        if name is None:
            return Frame(self._kernel.unresolved(address), False)
        return Frame(name, True)

    # ---------------------------------------------------------------- user

    def user_frame(self, pid: int, address: int, leaf: bool) -> Frame:
        proc = self._profile.processes.get(pid)
        lookup = address if leaf else address - 1
        entry = None
        for snap in reversed(proc.snapshots if proc else ()):
            entry = find_entry(snap.entries, lookup)
            if entry:
                break
        if entry is None:
            why = "[unmapped]" if proc and proc.snapshots else "[no maps]"
            return Frame(f"{why}+0x{address:x}", False)
        offset = file_offset(AbsAddr(address), entry.start, entry.offset)
        symbols = self._symbols_for(entry)
        if symbols is not None:
            vaddr = symbols.vaddr_of(file_offset(AbsAddr(lookup), entry.start, entry.offset))
            hit = symbols.lookup(vaddr) if vaddr is not None else None
            if hit:
                return Frame(hit[0], True)
        return Frame(f"{entry.module}+0x{offset:x}", False)

    def _symbols_for(self, entry: MapEntry) -> elfmod.ElfSymbols | None:
        if entry.path == "[vdso]":
            if self._vdso is False:
                data = elfmod.read_own_vdso()
                try:
                    self._vdso = elfmod.load_elf_bytes(data) if data else None
                except elfmod.ElfReadError:
                    self._vdso = None
            return self._vdso or None
        if not entry.is_file:
            return None
        key = entry.file_key
        if key not in self._elves:
            path = self._path_for(entry) or _original_path(entry)
            try:
                self._elves[key] = elfmod.load_elf(path) if path else None
            except elfmod.ElfReadError:
                self._elves[key] = None
        return self._elves[key]

    # ---------------------------------------------------------------- batch

    def symbolize(self, samples: list[StackSample]) -> list[SymbolizedSample]:
        user_cache: dict[tuple[int, int, bool], Frame] = {}
        kernel_cache: dict[tuple[int, bool], Frame] = {}
        staged = []
        for s in samples:
            last = len(s.user) - 1
            user = []
            for i, a in enumerate(s.user):
                key = (s.pid, a, i == last)
                if key not in user_cache:
                    user_cache[key] = self.user_frame(s.pid, a, i == last)
                user.append(user_cache[key])
            last = len(s.kernel) - 1
            kernel = []
            for i, a in enumerate(s.kernel):
                key = (a, i == last)
                if key not in kernel_cache:
                    kernel_cache[key] = self.kernel_frame(a, i == last)
                kernel.append(kernel_cache[key])
            staged.append((s, user, kernel))
        names = demangle_all(f.name for f in user_cache.values() if f.resolved)
        self.unresolved = sum(1 for f in user_cache.values() if not f.resolved) + \
            sum(1 for f in kernel_cache.values() if not f.resolved)
        return [SymbolizedSample(pid=s.pid, tid=s.tid, comm=s.comm,
                                 user=tuple(names.get(f.name, f.name) for f in user),
                                 kernel=tuple(f.name for f in kernel), count=s.count)
                for s, user, kernel in staged]
