"""A function symbol table in flat arrays, looked up by binary search.

Built from raw ELF symbol entries in one pass (no object per symbol), saved
to and loaded from bytes as they are (the disk cache), names decoded only
when asked for.

The rules, the same for every source of symbols:
- defined functions (STT_FUNC, STT_GNU_IFUNC) with an address; and, where
  no function covers them, untyped symbols in code sections: the entry
  points of hand-written assembly (ld.so's `_start`, which calls
  `_dl_start`), as perf names them too. Such a label never takes an address
  from a function, and yields to one at its own address;
- several symbols at one address: a global beats a weak beats a local one
  (glibc's `memcpy` over its `__GI_memcpy` alias), then the larger, then the
  later in the table;
- names lose their symbol version (`memcpy@@GLIBC_2.14` reads memcpy);
- an address is named by the nearest preceding symbol only if it lies inside
  that symbol's size; a symbol without a size reaches the next symbol (or the
  end of its section).
"""
from __future__ import annotations

import bisect
import struct
import sys
from array import array
from collections import Counter
from itertools import compress
from operator import add, not_
from typing import Iterable

STT_NOTYPE, STT_FUNC, STT_GNU_IFUNC = 0, 2, 10
LABEL_RANK = 3  # an untyped symbol's: below any function's
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_LORESERVE = 0xFF00
_RANK = {STB_GLOBAL: 0, STB_WEAK: 1}
_LAST = (1 << 64) - 1

# Arrays are stored in native order. Change the version digit whenever the
# layout or the rules above change: cached tables are then built again.
MAGIC = b"PSYMTB4" + (b"L" if sys.byteorder == "little" else b"B")
_HEADER = struct.Struct("<8sQQ")  # magic, symbol count, names blob size


class SymbolTable:
    """Sorted, non-overlapping starts; `ends[i]` is where symbol i stops naming."""

    __slots__ = ("starts", "ends", "name_offsets", "ranks", "names", "base")

    def __init__(self, starts, ends, name_offsets, ranks, names, base: int = 0) -> None:
        """Arrays, or memoryviews of a mapped cache file; `names` is bytes or
        that mapping, the names starting at `base` in it."""
        self.starts = starts
        self.ends = ends
        self.name_offsets = name_offsets
        self.ranks = ranks  # 0 global, 1 weak, 2 local, 3 a label (LABEL_RANK)
        self.names = names
        self.base = base

    def __len__(self) -> int:
        return len(self.starts)

    def find(self, vaddr: int) -> int:
        """The index of the symbol naming `vaddr`, -1 if none does."""
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i < 0 or vaddr >= self.ends[i]:
            return -1
        return i

    def at(self, start: int) -> int:
        """The index of the symbol starting exactly at `start`, -1 if none."""
        i = bisect.bisect_left(self.starts, start)
        return i if i < len(self.starts) and self.starts[i] == start else -1

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        """(function name, offset into it) for an ELF virtual address."""
        i = self.find(vaddr)
        return None if i < 0 else (self.name(i), vaddr - self.starts[i])

    def name(self, i: int) -> str:
        """The name without its symbol version (`memcpy@@GLIBC_2.14` is memcpy)."""
        off = self.base + self.name_offsets[i]
        end = self.names.find(b"\0", off)
        raw = self.names[off:end if end >= 0 else None]
        at = raw.find(b"@", 1)
        return (raw[:at] if at > 0 else raw).decode("utf-8", "replace")

    # ------------------------------------------------------------ bytes

    def to_bytes(self) -> bytes:
        """Header, starts, ends, name offsets, ranks, names, padded to 8 bytes
        so that a mapped copy can be read in place (`from_buffer`)."""
        names = bytes(self.names[self.base:]) if self.base else bytes(self.names)
        names += b"\0" * (-len(names) % 8)
        count = len(self.starts)
        ranks = self.ranks.tobytes() + b"\0" * (-(count * 21) % 8)
        return b"".join((_HEADER.pack(MAGIC, count, len(names)), self.starts.tobytes(),
                         self.ends.tobytes(), self.name_offsets.tobytes(), ranks, names))

    @classmethod
    def from_bytes(cls, data: bytes) -> "SymbolTable":
        return cls.from_buffer(data, 0, len(data))

    @classmethod
    def from_buffer(cls, buf, pos: int, length: int) -> "SymbolTable":
        """The table `to_bytes` wrote at `pos` in `buf` (bytes or an mmap),
        read in place: loading node's 9 MB of symbols costs no copy.
        Raises ValueError for anything else."""
        if length < _HEADER.size or pos % 8:
            raise ValueError("short or misaligned symbol table")
        magic, count, names_size = _HEADER.unpack_from(buf, pos)
        arrays = count * 21 + (-(count * 21) % 8)
        if magic != MAGIC or length != _HEADER.size + arrays + names_size:
            raise ValueError("not a symbol table of this version")
        view = memoryview(buf)
        at = pos + _HEADER.size
        starts = view[at:at + count * 8].cast("Q")
        ends = view[at + count * 8:at + count * 16].cast("Q")
        offsets = view[at + count * 16:at + count * 20].cast("I")
        ranks = view[at + count * 20:at + count * 21]
        return cls(starts, ends, offsets, ranks, buf, at + arrays)


def build(entries: Iterable[tuple[int, int, int, int, int]], strtab: bytes,
          section_ends: dict[int, int], code_sections: frozenset[int] = frozenset()
          ) -> SymbolTable:
    """A table from raw ELF symbols (st_name, st_info, st_shndx, st_value,
    st_size); `section_ends` maps a section index to its end address, and
    `code_sections` are the executable ones (where labels count)."""
    entries = list(entries)
    funcs = [(value, _RANK.get(info >> 4, 2), shndx, size, name)
             for name, info, shndx, value, size in entries
             if (info & 0xF) in (STT_FUNC, STT_GNU_IFUNC)]
    columns = [list(c) for c in zip(*funcs)] if funcs else [[], [], [], [], []]
    labels = [(value, LABEL_RANK, shndx, size, name)
              for name, info, shndx, value, size in entries
              if (info & 0xF) == STT_NOTYPE and shndx in code_sections and name]
    return _with_labels(columns, [list(c) for c in zip(*labels)] if labels else None,
                        strtab, section_ends)


# st_info -> 1 for a function type (STT_FUNC, STT_GNU_IFUNC), else 0; and -> rank
_IS_FUNC = bytes(1 if b & 0xF in (STT_FUNC, STT_GNU_IFUNC) else 0 for b in range(256))
_RANK_OF = bytes(_RANK.get(b >> 4, 2) for b in range(256))
# Field offsets and widths in one symbol entry: name, info, shndx, value, size.
_LAYOUT = {64: (24, (0, 4), (4, 1), (6, 2), (8, 8), (16, 8)),
           32: (16, (0, 4), (12, 1), (14, 2), (4, 4), (8, 4))}
_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def build_from_section(raw: bytes, strtab: bytes, section_ends: dict[int, int],
                       elfclass: int, little_endian: bool,
                       code_sections: frozenset[int] = frozenset()) -> SymbolTable:
    """A table straight from the bytes of a .symtab/.dynsym section.

    Each field is cut out as a column with strided slices and read as an
    array, and non-functions are dropped with `itertools.compress`: no Python
    code runs per symbol here (node's 110,000 would take ~0.4 s that way)."""
    entsize, *fields = _LAYOUT[elfclass]
    n = len(raw) // entsize
    raw = raw[:n * entsize]
    columns = []
    for offset, width in fields:
        if width == 1:
            columns.append(raw[offset::entsize])
            continue
        buf = bytearray(n * width)
        for k in range(width):
            buf[k::width] = raw[offset + k::entsize]
        column = array(_CODES[width], bytes(buf))
        if little_endian != (sys.byteorder == "little"):
            column.byteswap()
        columns.append(column)
    names, infos, shndxs, values, sizes = columns
    mask = infos.translate(_IS_FUNC)
    funcs = [list(compress(values, mask)), list(compress(infos.translate(_RANK_OF), mask)),
             list(compress(shndxs, mask)), list(compress(sizes, mask)),
             list(compress(names, mask))]
    labels = None
    if code_sections:
        untyped = infos.translate(_IS_NOTYPE)
        at = [i for i in compress(range(n), untyped) if shndxs[i] in code_sections and names[i]]
        if at:
            labels = [[values[i] for i in at], [LABEL_RANK] * len(at), [shndxs[i] for i in at],
                      [sizes[i] for i in at], [names[i] for i in at]]
    return _with_labels(funcs, labels, strtab, section_ends)


_IS_NOTYPE = bytes(1 if b & 0xF == STT_NOTYPE else 0 for b in range(256))


def _with_labels(funcs: list[list[int]], labels: list[list[int]] | None, strtab: bytes,
                 section_ends: dict[int, int]) -> SymbolTable:
    """The functions' table, with the labels that fall where no function
    does (ARM's mapping symbols `$x`, `$d` and the like excepted)."""
    table = _build(*funcs, strtab, section_ends)
    if not labels:
        return table
    keep = [i for i, (value, name) in enumerate(zip(labels[0], labels[4]))
            if value and table.find(value) < 0 and strtab[name:name + 1] not in (b"$", b".")]
    if not keep:
        return table
    return _build(*(column + [labels[k][i] for i in keep] for k, column in enumerate(funcs)),
                  strtab, section_ends)


def _build(values: list[int], ranks: list[int], shndxs: list[int], sizes: list[int],
           names: list[int], strtab: bytes, section_ends: dict[int, int]) -> SymbolTable:
    """Columns of function symbols -> the table. Built with C-level dict,
    sort and map calls; Python loops only over aliases and symbols without
    a size, a small part of any table."""
    chosen = dict(zip(values, range(len(values))))  # value -> a symbol there
    if len(chosen) < len(values):  # aliases: the best by rank, size, then table order
        shared = {v for v, n in Counter(values).items() if n > 1}
        groups: dict[int, list[int]] = {}
        for i in [i for i, v in enumerate(values) if v in shared]:
            groups.setdefault(values[i], []).append(i)
        for v, members in groups.items():
            chosen[v] = min(members, key=lambda i: (ranks[i], -sizes[i], -i))
    chosen.pop(0, None)
    starts = sorted(chosen)
    index = list(map(chosen.__getitem__, starts))
    sections = list(map(shndxs.__getitem__, index))
    if sections and not (min(sections) > 0 and max(sections) < SHN_LORESERVE):
        keep = [i for i, s in enumerate(sections) if 0 < s < SHN_LORESERVE]  # not undefined,
        starts = [starts[i] for i in keep]  # absolute or common
        index = [index[i] for i in keep]
        sections = [sections[i] for i in keep]
    lengths = list(map(sizes.__getitem__, index))
    ends = list(map(add, starts, lengths))
    for i in compress(range(len(starts)), map(not_, lengths)):
        # No size: until the next symbol, within its section.
        limits = [x for x in (starts[i + 1] if i + 1 < len(starts) else None,
                              section_ends.get(sections[i])) if x is not None and x > starts[i]]
        ends[i] = min(limits) if limits else starts[i] + 1
    if ends and max(ends) > _LAST:  # a damaged size runs past the address space
        ends = [min(e, _LAST) for e in ends]
    # A sized symbol may overrun the next start (nested symbols); the
    # nearest preceding start still decides, as the rule says.
    return SymbolTable(array("Q", starts), array("Q", ends),
                       array("I", map(names.__getitem__, index)),
                       array("B", map(ranks.__getitem__, index)), strtab)
