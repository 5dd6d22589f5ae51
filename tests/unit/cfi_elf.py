"""Tiny ELF64 images holding only the sections a CFI test hands in, so that
hand-made .eh_frame / .debug_frame bytes can be read both by cfi.py and by
readelf (the oracle), and helpers to build CFI bytes field by field."""
from __future__ import annotations

import struct

SHT_PROGBITS = 1
SHF_ALLOC = 0x2


def make_elf(sections: list[tuple[str, int, bytes, int]], machine: int = 62) -> bytes:
    """An x86_64 (EM_X86_64=62) ET_DYN image with sections (name, sh_addr,
    data, sh_flags), a .shstrtab, and no program headers."""
    names = b"\0"
    offsets = []
    body = b""
    pos = 64
    for name, _addr, data, _flags in sections:
        offsets.append((len(names), pos + len(body)))
        names += name.encode() + b"\0"
        body += data + b"\0" * (-len(data) % 8)
    shstr_name = len(names)
    names += b".shstrtab\0"
    shstr_off = pos + len(body)
    body += names + b"\0" * (-len(names) % 8)
    shoff = pos + len(body)
    headers = [b"\0" * 64]
    for (name_off, off), (_name, addr, data, flags) in zip(offsets, sections):
        headers.append(struct.pack("<IIQQQQIIQQ", name_off, SHT_PROGBITS, flags | SHF_ALLOC,
                                   addr, off, len(data), 0, 0, 8, 0))
    headers.append(struct.pack("<IIQQQQIIQQ", shstr_name, 3, 0, 0, shstr_off, len(names),
                               0, 0, 1, 0))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 0, shoff, 0, 64, 56, 0, 64,
                               len(headers), len(headers) - 1)
    return ehdr + body + b"".join(headers)


def uleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def sleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if (v == 0 and not b & 0x40) or (v == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def entry(body: bytes, wide: bool = False) -> bytes:
    """A CIE or FDE: its length field(s), then `body` (id onwards), padded
    with DW_CFA_nop to the address size as the toolchains do."""
    body += b"\0" * (-(len(body) + (12 if wide else 4)) % 8)
    if wide:
        return struct.pack("<IQ", 0xFFFFFFFF, len(body)) + body
    return struct.pack("<I", len(body)) + body
