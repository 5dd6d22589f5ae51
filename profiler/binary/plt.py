"""Names for PLT stubs (`PyObject_Malloc@plt`), which no symbol table has.

A call to a shared library's function goes through a stub that jumps
through the function's GOT slot: `jmp *slot(%rip)` (x86-64: ff 25 disp32).
Each stub is decoded to find its slot, and the slot's dynamic relocation
(JUMP_SLOT or GLOB_DAT) names the function, as perf and objdump name them.
This holds for lazy .plt entries, IBT's .plt.sec and .plt.got alike, without
assuming their order. Other architectures get no stub names (frames stay
module+offset).
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from profiler.binary import symtab
from profiler.binary.elf import read_sections

EM_X86_64 = 62
R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT, R_X86_64_IRELATIVE = 6, 7, 37
_RELA = struct.Struct("<QQq")
_SYM = struct.Struct("<IBBHQQ")
_SECTIONS = (".plt", ".plt.sec", ".plt.got", ".rela.plt", ".rela.dyn", ".dynsym", ".dynstr")
_MAX_STUBS = 1 << 20


def _machine(stream: BinaryIO) -> int | None:
    stream.seek(0)
    head = stream.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return None  # only 64-bit little-endian files have stubs decoded here
    return struct.unpack_from("<H", head, 18)[0]


def plt_table(stream: BinaryIO) -> symtab.SymbolTable | None:
    """A symbol table naming every stub by the function whose slot a
    relocation names (the caller adds `@plt`: symbol tables drop what
    follows an '@' as a version); None when the file has none (or is not
    x86-64)."""
    try:
        if _machine(stream) != EM_X86_64:
            return None
        sections = read_sections(stream, _SECTIONS)
    except (OSError, ValueError, struct.error):
        return None
    dynsym, dynstr = sections.get(".dynsym"), sections.get(".dynstr")
    if dynsym is None or dynstr is None:
        return None
    slots = _slot_symbols(sections, dynsym.data, dynstr.data)
    stubs = []
    for name in (".plt", ".plt.sec", ".plt.got"):
        sec = sections.get(name)
        if sec is None or not sec.addr:
            continue
        # .plt and .plt.sec entries are 16 bytes; .plt.got's are 8 or 16, so
        # it is read in 8-byte steps, a stub wherever a jump starts in one.
        size = 8 if name == ".plt.got" else 16
        for at in range(0, min(len(sec.data), size * _MAX_STUBS), size):
            entry = sec.data[at:at + 16]
            jump = entry.find(b"\xff\x25")
            if jump < 0 or jump >= size or jump + 6 > len(entry):
                continue
            (disp,) = struct.unpack_from("<i", entry, jump + 2)
            slot = sec.addr + at + jump + 6 + disp
            symbol = slots.get(slot)
            if symbol:
                stubs.append((sec.addr + at, size, symbol))
    if not stubs:
        return None
    strtab = bytearray(b"\0")
    entries = []
    for start, size, name in stubs:
        entries.append((len(strtab), symtab.STB_GLOBAL << 4 | symtab.STT_FUNC, 1, start, size))
        strtab += name.encode("utf-8", "surrogateescape") + b"\0"
    return symtab.build(entries, bytes(strtab), {})


def _slot_symbols(sections, dynsym: bytes, dynstr: bytes) -> dict[int, str]:
    """GOT slot address -> the function its relocation names. An IRELATIVE
    slot (a static IFUNC, as in libc) is named by the exported function at
    its resolver's address, else `*ABS*+0xADDR` as objdump names it."""
    names, by_value = [], {}
    for at in range(0, len(dynsym) - _SYM.size + 1, _SYM.size):
        st_name, info, _other, _shndx, value, _size = _SYM.unpack_from(dynsym, at)
        end = dynstr.find(b"\0", st_name)
        label = dynstr[st_name:end].decode("utf-8", "replace") if 0 < st_name < end else ""
        label = label.split("@", 1)[0]
        names.append((label, value))
        if label and value and (value not in by_value or info >> 4 == symtab.STB_GLOBAL):
            by_value[value] = label  # a global name over a weak alias, as symbol tables do
    out = {}
    for name in (".rela.plt", ".rela.dyn"):
        sec = sections.get(name)
        if sec is None:
            continue
        for at in range(0, len(sec.data) - _RELA.size + 1, _RELA.size):
            offset, info, addend = _RELA.unpack_from(sec.data, at)
            kind, index = info & 0xFFFFFFFF, info >> 32
            if kind == R_X86_64_IRELATIVE:
                out[offset] = by_value.get(addend) or f"*ABS*+0x{addend & (2 ** 64 - 1):x}"
            elif kind in (R_X86_64_JUMP_SLOT, R_X86_64_GLOB_DAT) and 0 < index < len(names) \
                    and names[index][0]:
                out[offset] = names[index][0]
    return out
