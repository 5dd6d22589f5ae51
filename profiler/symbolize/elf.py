"""ELF symbol tables (.symtab, else .dynsym) and PT_LOAD segments.

pyelftools reads the headers; the symbol tables themselves are unpacked in
one `struct.iter_unpack` pass over the raw section bytes (pyelftools builds a
Python object per symbol, which is far slower on large binaries), keeping
only defined functions, sorted by address, names decoded on demand.
"""
from __future__ import annotations

import bisect
import dataclasses
import io
import struct

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from profiler.symbolize.addresses import ElfVaddr, FileOffset, elf_vaddr

STT_FUNC, STT_GNU_IFUNC = 2, 10
STB_GLOBAL, STB_WEAK = 1, 2


class ElfReadError(Exception):
    """The file is not a readable ELF (a per-file failure, shown as module+offset)."""


@dataclasses.dataclass(frozen=True)
class LoadSegment:
    offset: int  # p_offset
    vaddr: int  # p_vaddr
    filesz: int


class ElfSymbols:
    def __init__(self, segments: list[LoadSegment], table: list[tuple[int, int, int]],
                 strtab: bytes) -> None:
        """table: (address, end, name offset); a symbol without a size ends at
        the end of its section."""
        self.segments = segments
        table.sort()
        self._addrs = [t[0] for t in table]
        self._ends = [t[1] for t in table]
        self._name_offsets = [t[2] for t in table]
        self._strtab = strtab

    def __len__(self) -> int:
        return len(self._addrs)

    def vaddr_of(self, offset: FileOffset) -> ElfVaddr | None:
        """The ELF virtual address for a file offset, via its PT_LOAD segment."""
        for seg in self.segments:
            if seg.offset <= offset < seg.offset + seg.filesz:
                return elf_vaddr(offset, seg.offset, seg.vaddr)
        return None

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        """(function name, offset into it) for an ELF virtual address."""
        i = bisect.bisect_right(self._addrs, vaddr) - 1
        if i < 0 or vaddr >= self._ends[i]:
            return None
        return self._name(i), vaddr - self._addrs[i]

    def _name(self, i: int) -> str:
        off = self._name_offsets[i]
        end = self._strtab.find(b"\0", off)
        return self._strtab[off:end if end >= 0 else None].decode("utf-8", "replace")


def _section_ends(elf: ELFFile) -> dict[int, int]:
    return {i: sec["sh_addr"] + sec["sh_size"] for i, sec in enumerate(elf.iter_sections())}


def _symbols(elf: ELFFile, stream, section_name: str):
    section = elf.get_section_by_name(section_name)
    if section is None or section["sh_type"] == "SHT_NOBITS" or section["sh_size"] == 0:
        return None
    strtab_sec = elf.get_section(section["sh_link"])
    stream.seek(strtab_sec["sh_offset"])
    strtab = stream.read(strtab_sec["sh_size"])
    stream.seek(section["sh_offset"])
    raw = stream.read(section["sh_size"])
    order = "<" if elf.little_endian else ">"
    if elf.elfclass == 64:
        fmt, entsize = order + "IBBHQQ", 24
        unpack = ((n, info, shndx, value, size) for n, info, _o, shndx, value, size
                  in struct.iter_unpack(fmt, raw[: len(raw) // entsize * entsize]))
    else:
        fmt, entsize = order + "IIIBBH", 16
        unpack = ((n, info, shndx, value, size) for n, value, size, info, _o, shndx
                  in struct.iter_unpack(fmt, raw[: len(raw) // entsize * entsize]))
    section_end = _section_ends(elf)
    best: dict[int, tuple[int, int, int]] = {}
    for name_off, info, shndx, value, size in unpack:
        if shndx == 0 or value == 0 or (info & 0xF) not in (STT_FUNC, STT_GNU_IFUNC):
            continue
        end = value + size if size else section_end.get(shndx, value)
        rank = 0 if info >> 4 == STB_GLOBAL else 1 if info >> 4 == STB_WEAK else 2
        old = best.get(value)
        if old is None or (rank, -end) < (old[0], -old[1]):
            best[value] = (rank, end, name_off)
    return sorted((v, e, n) for v, (_r, e, n) in best.items()), strtab


def load_elf_stream(stream) -> ElfSymbols:
    try:
        elf = ELFFile(stream)
        segments = [LoadSegment(s["p_offset"], s["p_vaddr"], s["p_filesz"])
                    for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        found = _symbols(elf, stream, ".symtab") or _symbols(elf, stream, ".dynsym")
    except (ELFError, OSError, struct.error, ValueError, KeyError) as err:
        raise ElfReadError(str(err)) from None
    table, strtab = found if found else ([], b"")
    return ElfSymbols(segments, table, strtab)


def load_elf(path: str) -> ElfSymbols:
    try:
        with open(path, "rb") as f:
            return load_elf_stream(f)
    except OSError as err:
        raise ElfReadError(str(err)) from None


def load_elf_bytes(data: bytes) -> ElfSymbols:
    return load_elf_stream(io.BytesIO(data))


def read_own_vdso() -> bytes | None:
    """This process's [vdso] image: the same kernel-provided ELF in every process."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if line.rstrip().endswith("[vdso]"):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    with open("/proc/self/mem", "rb") as mem:
                        mem.seek(lo)
                        return mem.read(hi - lo)
    except (OSError, ValueError):
        return None
    return None
