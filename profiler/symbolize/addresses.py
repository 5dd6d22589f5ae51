"""Address kinds (DESIGN rule 4) and the two formulas between them.

An `AbsAddr` is a process virtual address as sampled; a `FileOffset` is a
byte offset in the mapped file; an `ElfVaddr` is a virtual address as the
ELF file's own headers and symbols use it. Each conversion is written once.
"""
from __future__ import annotations

from typing import NewType

AbsAddr = NewType("AbsAddr", int)
FileOffset = NewType("FileOffset", int)
ElfVaddr = NewType("ElfVaddr", int)


def file_offset(addr: AbsAddr, map_start: int, map_offset: int) -> FileOffset:
    """Where in the mapped file an absolute address lies."""
    return FileOffset(addr - map_start + map_offset)


def elf_vaddr(offset: FileOffset, p_offset: int, p_vaddr: int) -> ElfVaddr:
    """The ELF virtual address of a file offset inside a PT_LOAD segment."""
    return ElfVaddr(offset - p_offset + p_vaddr)
