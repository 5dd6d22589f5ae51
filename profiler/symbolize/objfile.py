"""One mapped file's symbols, through the lookup chain.

A file offset becomes an ELF virtual address through the file's own PT_LOAD
segments, and is then looked up in each source in turn until one names it:

  1. the file's .symtab
  2. a debug file found by build-id
  3. the .gnu_debuglink file (CRC-checked)
  4. MiniDebugInfo (.gnu_debugdata)
  5. .dynsym
  6. PLT stubs, named `function@plt` from their relocations

Debug files are searched only when an address falls through the sources
before them, once per file. `load_object` never raises: an unreadable or
malformed file names nothing, and its frames read module+offset.
"""
from __future__ import annotations

import os
import struct
from typing import Callable

from profiler.binary import debuginfo, elf, plt
from profiler.binary.addresses import FileOffset, elf_vaddr_in
from profiler.binary.cache import SymbolCache, identity
from profiler.binary.readfile import open_regular, trusted_for_cache
from profiler.binary.symtab import LABEL_RANK, SymbolTable

SOURCES = ("symtab", "build-id", "debuglink", "minidebuginfo", "dynsym", "plt")
PLT_SUFFIX = "@plt"


_DAMAGE = (ValueError, OverflowError, struct.error, MemoryError, TypeError, KeyError,
           IndexError, OSError)  # what a hostile file or cache entry can make the readers raise


class ObjectSymbols:
    def __init__(self, module: str, segments: tuple[elf.LoadSegment, ...],
                 tables: dict[str, SymbolTable | None],
                 finders: dict[str, Callable[[], SymbolTable | None]] | None = None) -> None:
        """`tables`: sources at hand (None: known absent); `finders`: how to
        get the others, tried only when an address falls through to them."""
        self.module = module
        self.build_id: bytes | None = None  # the file's GNU build-id, when it has one
        # Where its DWARF may be (symbolize/lines.py looks): the file read,
        # the path the process mapped, the root reaching it, its debuglink
        # and the debug directories; path "" for an image held in memory.
        self.path = ""
        self.origin = ""
        self.root = ""
        self.debuglink: tuple[str, int] | None = None
        self.debug_dirs: tuple[str, ...] = ()
        self._segments = tuple((s.offset, s.vaddr, s.filesz) for s in segments)
        self._tables = dict(tables)
        self._finders = finders or {}

    def lookup(self, offset: int) -> tuple[str, int, str] | None:
        """(raw name, offset into the function, source) for a file offset."""
        vaddr = elf_vaddr_in(FileOffset(offset), self._segments)
        if vaddr is None:
            return None
        tables = self._tables
        label = None
        for source in SOURCES:
            table = tables[source] if source in tables else self._table(source)
            i = table.find(vaddr) if table is not None else -1
            if i >= 0:
                start = table.starts[i]
                if table.ranks[i] == LABEL_RANK:
                    # An untyped symbol names only what no function covers,
                    # in any source: a later one (.dynsym after MiniDebugInfo,
                    # which leaves out what .dynsym exports) may have one.
                    label = label or (table.name(i), vaddr - start, source)
                    continue
                name = self._better_alias(source, start, table.ranks[i]) or table.name(i)
                if source == "plt":
                    name += PLT_SUFFIX
                return name, vaddr - start, source
        return label

    def _better_alias(self, source: str, start: int, rank: int) -> str | None:
        """A global name for the same function from .dynsym. MiniDebugInfo
        leaves out what .dynsym exports, so its `__GI_memcpy` must yield to
        .dynsym's `memcpy`, as it would within one table. (A .symtab, in the
        file or a debug file, holds both names itself.)"""
        if rank == 0 or source != "minidebuginfo":
            return None
        table = self._table("dynsym")
        j = table.at(start) if table is not None else -1
        return table.name(j) if j >= 0 and table.ranks[j] < rank else None

    def vaddr_of(self, offset: int) -> int | None:
        """The ELF virtual address of a file offset (what DWARF speaks)."""
        return elf_vaddr_in(FileOffset(offset), self._segments)

    def name_at(self, offset: int) -> str | None:
        hit = self.lookup(offset)
        return hit[0] if hit else None

    def source_at(self, offset: int) -> str | None:
        hit = self.lookup(offset)
        return hit[2] if hit else None

    def _table(self, source: str) -> SymbolTable | None:
        if source not in self._tables:
            finder = self._finders.get(source)
            try:
                self._tables[source] = finder() if finder else None
            except _DAMAGE:  # a damaged debug file names nothing
                self._tables[source] = None
        return self._tables[source]


def load_object(path: str, *, origin: str | None = None, root: str = "",
                debug_dirs: tuple[str, ...] = debuginfo.DEFAULT_DEBUG_DIRS,
                cache: SymbolCache | None = None) -> ObjectSymbols:
    """The symbols of the file at `path`. `origin` is the path the process
    mapped (where debuglink files are looked for; default `path`), `root` the
    prefix reaching the process's file system (/proc/PID/root for a
    container), `debug_dirs` the roots of separate debug files."""
    origin = origin or path
    module = os.path.basename(origin)
    f = open_regular(path)
    if f is None:
        return ObjectSymbols(module, (), {})
    with f:
        st = os.fstat(f.fileno())
        dirs = debug_dirs if not root else \
            tuple(dict.fromkeys([*(root + d for d in debug_dirs), *debug_dirs]))

        def make() -> ObjectSymbols:
            try:
                return _load(f, path, st, module, origin, root, dirs, cache)
            except _DAMAGE:
                return ObjectSymbols(module, (), {})

        if cache is None:
            return make()
        return cache.remember((identity(st), origin, root, dirs), make)


def _load(f, path: str, st: os.stat_result, module: str, origin: str, root: str,
          dirs: tuple[str, ...], cache: SymbolCache | None) -> ObjectSymbols:
    head = elf.read_image(f, tables=False)
    if not head.readable:
        return ObjectSymbols(module, (), {})
    build_id = head.build_id
    disk = cache if cache and build_id and trusted_for_cache(st) else None
    # A stripped and an unstripped copy share a build-id: the size and the
    # section headers tell them apart.
    kind = f"image-{st.st_size}-{head.layout:08x}"
    saved = disk.load(build_id, kind) if disk else None
    if saved is not None:
        meta, tables = saved
        link = meta.get("debuglink")
        debuglink = (str(link[0]), int(link[1])) if link else None
        lazy_dynsym = bool(meta.get("lazy_dynsym"))
    else:
        f.seek(0)
        image = elf.read_image(f)
        tables = {name: t for name, t in (("symtab", image.symtab), ("dynsym", image.dynsym),
                                          ("minidebuginfo", _minidebuginfo(image)))
                  if t is not None}
        debuglink = image.debuglink
        lazy_dynsym = image.more_in_dynsym
        if disk:
            disk.save(build_id, kind, {"debuglink": list(debuglink) if debuglink else None,
                                       "lazy_dynsym": lazy_dynsym}, tables)
    tables = {"symtab": None, "minidebuginfo": None, **tables}
    finders = {}
    if lazy_dynsym:
        expected = identity(st)
        finders["dynsym"] = lambda: _cached(disk, build_id, f"dynsym-{kind}",
                                            lambda: elf.read_dynsym(path, expected))
    else:
        tables.setdefault("dynsym", None)
    expected_file = identity(st)
    finders["plt"] = lambda: _cached(disk, build_id, f"plt-{kind}",
                                     lambda: _plt_table(path, expected_file))
    if build_id:
        finders["build-id"] = lambda: _first_table(
            debuginfo.build_id_paths(build_id, dirs), build_id, None, cache)
    if debuglink:
        name, crc = debuglink
        finders["debuglink"] = lambda: _first_table(
            debuginfo.debuglink_paths(os.path.dirname(origin), name, dirs, root),
            build_id, crc, cache)
    found = ObjectSymbols(module, head.segments, tables, finders)
    found.build_id = build_id
    found.path, found.origin, found.root = path, origin, root
    found.debuglink, found.debug_dirs = debuglink, dirs
    return found


def _cached(disk: SymbolCache | None, build_id: bytes | None, kind: str,
            make: Callable[[], SymbolTable | None]) -> SymbolTable | None:
    """One table through the disk cache."""
    saved = disk.load(build_id, kind) if disk and build_id else None
    if saved is not None:
        return saved[1].get("table")
    table = make()
    if disk and build_id:
        disk.save(build_id, kind, {}, {"table": table} if table is not None else {})
    return table


def _plt_table(path: str, expected: tuple) -> SymbolTable | None:
    stream = open_regular(path)
    if stream is None:
        return None
    with stream:
        if identity(os.fstat(stream.fileno())) != expected:
            return None  # the path names another file now
        return plt.plt_table(stream)


def object_from_bytes(data: bytes, module: str, *,
                      debug_dirs: tuple[str, ...] = debuginfo.DEFAULT_DEBUG_DIRS,
                      cache: SymbolCache | None = None) -> ObjectSymbols:
    """Symbols of an ELF image held in memory (the vDSO, whose internal
    functions are named when the kernel's debug package is installed)."""
    try:
        image = elf.read_image_bytes(data)
    except _DAMAGE:
        return ObjectSymbols(module, (), {})
    tables = {"symtab": image.symtab, "dynsym": image.dynsym, "debuglink": None, "plt": None,
              "minidebuginfo": None}
    build_id = image.build_id
    finders = {"build-id": lambda: _first_table(
        debuginfo.build_id_paths(build_id, debug_dirs), build_id, None, cache)} if build_id else {}
    found = ObjectSymbols(module, image.segments, tables, finders)
    found.build_id = build_id
    return found


def _minidebuginfo(image: elf.ElfImage) -> SymbolTable | None:
    if not image.debugdata:
        return None
    inner = debuginfo.decompress_minidebuginfo(image.debugdata)
    return elf.read_image_bytes(inner).symtab if inner else None


def _first_table(paths: list[str], build_id: bytes | None, crc: int | None,
                 cache: SymbolCache | None) -> SymbolTable | None:
    for path in paths:
        table = _debug_file_table(path, build_id, crc, cache)
        if table is not None:
            return table
    return None


def _debug_file_table(path: str, build_id: bytes | None, crc: int | None,
                      cache: SymbolCache | None) -> SymbolTable | None:
    """The .symtab of a separate debug file, if it belongs to this build.
    Everything is read from one descriptor: what was checked is what is used."""
    f = open_regular(path)
    if f is None:
        return None
    with f:
        st = os.fstat(f.fileno())
        disk = cache if cache and build_id and trusted_for_cache(st) else None
        kind = f"debug-{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"
        saved = disk.load(build_id, kind) if disk else None
        if saved is not None:
            meta, tables = saved
            if crc is not None and meta.get("crc") != crc:
                return None
            return tables.get("symtab")
        file_crc = debuginfo.file_crc32(f) if crc is not None else None
        if crc is not None and file_crc != crc:
            return None
        f.seek(0)
        image = elf.read_image(f)
    if build_id and image.build_id and image.build_id != build_id:
        return None
    if disk:
        disk.save(build_id, kind, {"crc": file_crc},
                  {"symtab": image.symtab} if image.symtab else {})
    return image.symtab
