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


def elf_vaddr_in(offset: FileOffset, segments) -> ElfVaddr | None:
    """The ELF virtual address of a file offset through the PT_LOAD segment
    (p_offset, p_vaddr, p_filesz) holding it, None outside every segment."""
    for p_offset, p_vaddr, p_filesz in segments:
        if p_offset <= offset < p_offset + p_filesz:
            return elf_vaddr(offset, p_offset, p_vaddr)
    return None


def code_address(address: int, leaf: bool) -> int:
    """The byte a stack frame stands for: the sampled instruction for the
    leaf; for a return address the byte before it, inside the call, since a
    call that ends a function returns past the function's end."""
    return address if leaf else address - 1
