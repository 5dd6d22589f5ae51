"""Kernel symbols from /proc/kallsyms: `parse_kallsyms(text)` is pure.

Read and sorted once per run. A module's symbols keep their module
(`ext4_file_write_iter [ext4]`), as perf shows them. With kptr_restrict
every address reads as zero: the table is then `hidden`, and kernel frames
read `[kernel]`, since naming them from zeros would be garbage.

Reading and parsing /proc/kallsyms costs ~0.15 s, most of a warm run's
symbolizing, so `load_kernel_symbols` keeps the kernel image's text symbols,
which cannot change until the next boot, in the disk cache under the boot
id. Other addresses (modules, BPF programs, trampolines) are looked up in a
fresh read.
"""
from __future__ import annotations

import bisect
import re
import uuid
from array import array
from itertools import accumulate, repeat
from operator import add
from typing import Callable

from profiler.binary.symtab import SymbolTable

_TEXT_LINE = re.compile(rb"^([0-9a-fA-F]+) [tTwW] ([^\t\n]+)(?:\t\[([^\]\n]*)\])?", re.M)
HIDDEN_FRAME = "[kernel]"
_LAST = (1 << 64) - 1
CACHE_KIND = "kallsyms"


class KernelSymbols:
    def __init__(self, table: SymbolTable, text_start: int | None, hidden: bool = False,
                 covers: tuple[tuple[int, int], ...] | None = None,
                 rest: Callable[[], "KernelSymbols"] | None = None) -> None:
        """`covers`: the address ranges `table` is complete for (None: all);
        `rest` reads the full table for any other address."""
        self.table = table
        self.text_start = text_start
        self.hidden = hidden
        self._covers = covers
        self._rest = rest

    @property
    def addresses(self) -> array:
        return self.table.starts

    def lookup(self, address: int) -> str | None:
        """The function containing `address`, None if it lies before every symbol.
        Of several names at one address the last in sorted order wins."""
        if self.hidden:
            return None
        if self._covers is not None and not any(lo <= address < hi for lo, hi in self._covers):
            if self._rest is None:
                return None
            full = self._rest()
            self._covers, self._rest, self.table = None, None, full.table
        i = self.table.find(address)
        return None if i < 0 else self.table.name(i)

    def unresolved(self, address: int) -> str:
        if self.hidden:
            return HIDDEN_FRAME
        if self.text_start and address >= self.text_start:
            return f"vmlinux+0x{address - self.text_start:x}"
        return f"[kernel]+0x{address:x}"


EMPTY = KernelSymbols(SymbolTable(array("Q"), array("Q"), array("I"), array("B"), b""), None)


def parse_kallsyms(text: bytes | str) -> KernelSymbols:
    # One pass of a compiled pattern and C-level sorts and maps: a Python
    # loop per line costs twice as long over a kernel's ~120,000 symbols.
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    rows = _TEXT_LINE.findall(text)
    if not rows:
        return EMPTY
    if not any(r[0].strip(b"0") for r in rows):
        return KernelSymbols(EMPTY.table, None, hidden=True)
    width = len(rows[0][0])
    if all(len(r[0]) == width for r in rows):
        rows.sort()  # equal-width hex sorts as numbers do
    else:
        rows.sort(key=lambda r: (int(r[0], 16), r[1]))
    hexes, names, modules = zip(*rows)
    if any(modules):
        names = [n + b" [" + m + b"]" if m else n for n, m in zip(names, modules)]
    starts = array("Q", map(int, hexes, repeat(16)))
    text_start = next((int(h, 16) for h, n, _m in rows if n == b"_stext"), None) or \
        next((int(h, 16) for h, n, _m in rows if n == b"_text"), None)
    return KernelSymbols(_table(starts, names), text_start)


def _table(starts: array, names) -> SymbolTable:
    """Kernel symbols have no sizes: each reaches the next."""
    ends = starts[1:]
    ends.append(_LAST)
    offsets = array("I", accumulate(map(add, map(len, names), repeat(1)), initial=0))
    offsets.pop()
    return SymbolTable(starts, ends, offsets, array("B", bytes(len(starts))),
                       b"\0".join(names) + b"\0")


def read_kallsyms(path: str = "/proc/kallsyms") -> KernelSymbols:
    try:
        with open(path, "rb") as f:
            return parse_kallsyms(f.read())
    except OSError:
        return EMPTY


# ------------------------------------------------------------------ cached


def _boot_id() -> bytes | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return uuid.UUID(f.read().strip()).bytes
    except (OSError, ValueError):
        return None


def _addresses_visible() -> bool:
    """kptr_restrict may hide addresses from us now even if a cache holds them."""
    try:
        with open("/proc/kallsyms", "rb") as f:
            first = f.readline()
    except OSError:
        return False
    return bool(first.split(b" ", 1)[0].strip(b"0"))


def load_kernel_symbols(cache=None) -> KernelSymbols:
    """The kernel's symbols, through the disk cache when this boot's are in
    it (`cache`: a SymbolCache, or None to read everything).

    Only the kernel image's text (_stext.._etext) is cached: it cannot change
    until the next boot, and the boot id names the boot (and with it the
    KASLR offset). Modules can be replaced by others at the same addresses,
    and BPF programs and trampolines come and go, so any address outside
    the image's text is looked up in a fresh read of /proc/kallsyms."""
    boot = _boot_id() if cache is not None else None
    if boot is None or not _addresses_visible():
        return read_kallsyms()  # hidden: the caller warns; no names from the cache
    saved = cache.load(boot, CACHE_KIND)
    if saved is not None:
        meta, tables = saved
        try:
            lo, hi = (int(x) for x in meta["text"])
            text_start = int(meta["text_start"])
            table = tables["kernel"]
        except (KeyError, TypeError, ValueError):
            pass  # a damaged entry: read afresh and write it again
        else:
            return KernelSymbols(table, text_start, covers=((lo, hi),), rest=read_kallsyms)
    full = read_kallsyms()
    etext = _address_of(full, "_etext")
    if full.hidden or full.text_start is None or etext is None or etext <= full.text_start:
        return full
    text = (full.text_start, etext)
    cache.save(boot, CACHE_KIND, {"text": list(text), "text_start": full.text_start},
               {"kernel": _subset(full.table, text)})
    return full


def _subset(table: SymbolTable, text: tuple[int, int]) -> SymbolTable:
    """The symbols starting in [lo, hi), cut out of the sorted table as
    slices (no Python step for each of 120,000 symbols)."""
    lo, hi = text
    i0, i1 = bisect.bisect_left(table.starts, lo), bisect.bisect_left(table.starts, hi)
    first = table.name_offsets[i0] if i0 < i1 else 0
    last = table.name_offsets[i1] if i1 < len(table.starts) else len(table.names)
    offsets = array("I", table.name_offsets[i0:i1])
    if first:
        offsets = array("I", (o - first for o in offsets))
    starts = array("Q", table.starts[i0:i1])
    ends = starts[1:]
    ends.append(hi)  # the last symbol reaches _etext, no further
    return SymbolTable(starts, ends, offsets, array("B", bytes(len(starts))),
                       bytes(table.names[first:last]))


def _address_of(symbols: KernelSymbols, name: str) -> int | None:
    wanted = name.encode()
    table = symbols.table
    at = table.names.find(b"\0" + wanted + b"\0")
    if at < 0:
        return None
    i = table.name_offsets.index(at + 1)
    return table.starts[i]
