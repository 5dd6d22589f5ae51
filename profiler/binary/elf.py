"""What the symbolizer needs from one ELF file, read once.

The ELF header, program headers, section headers and notes are fixed-size
records unpacked here with `struct`; symbol tables are cut into columns in
bulk (`symtab.build_from_section`). pyelftools was measured doing the same
and is left to the tests as an independent reader to check this one
against: it builds its struct parsers for every file (2 ms), parses the
dynamic section when it meets PT_DYNAMIC and whole GNU hash tables when it
lists sections (0.13 s for node), and makes an object of each symbol
(0.4 s for libpython's 13,000); a profile touches dozens of files, and a
cached one needs only its header and build-id.

A malformed file is a per-file failure: what could be read is kept
(segments without sections, say) and the rest reads as absent.
"""
from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from typing import BinaryIO

from profiler.binary import symtab
from profiler.binary.leb128 import Malformed
from profiler.binary.cache import identity
from profiler.binary.readfile import open_regular

NT_GNU_BUILD_ID = 3
_MAX_SECTION = 256 << 20  # a larger "section" is a damaged header, not data
_MAX_NOTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class LoadSegment:
    offset: int  # p_offset
    vaddr: int  # p_vaddr
    filesz: int


@dataclasses.dataclass(frozen=True)
class _Section:
    index: int
    name: str
    type: int
    offset: int
    size: int
    addr: int
    link: int
    flags: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ElfImage:
    segments: tuple[LoadSegment, ...] = ()
    build_id: bytes | None = None
    debuglink: tuple[str, int] | None = None  # (file name, CRC-32)
    symtab: symtab.SymbolTable | None = None
    dynsym: symtab.SymbolTable | None = None
    debugdata: bytes | None = None  # .gnu_debugdata: an xz-compressed ELF (MiniDebugInfo)
    more_in_dynsym: bool = False  # .dynsym (not read) has symbols .symtab lacks
    layout: int = 0  # CRC-32 of the section headers: tells apart files that share a build-id
    readable: bool = True  # False: not an ELF file at all


UNREADABLE = ElfImage(readable=False)


@dataclasses.dataclass(frozen=True)
class _Header:
    elfclass: int  # 32 or 64
    little_endian: bool
    phoff: int
    shoff: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int

    @property
    def order(self) -> str:
        return "<" if self.little_endian else ">"


_EHDR = {64: "HHIQQQIHHHHHH", 32: "HHIIIIIHHHHHH"}  # after the 16 bytes of e_ident


def _header(stream) -> _Header | None:
    try:
        ident = stream.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or \
                ident[5] not in (1, 2):
            return None
        elfclass, little = (32 if ident[4] == 1 else 64), ident[5] == 1
        layout = struct.Struct(("<" if little else ">") + _EHDR[elfclass])
        fields = layout.unpack(stream.read(layout.size))
    except (OSError, struct.error, ValueError):
        return None
    _type, _machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum, \
        shentsize, shnum, shstrndx = fields
    return _Header(elfclass, little, phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx)


def read_image(stream: BinaryIO, tables: bool = True) -> ElfImage:
    """Everything the symbolizer wants from an open ELF file; with
    tables=False only the segments and the build-id (from PT_NOTE), which is
    all a cached file needs."""
    elf = _header(stream)
    if elf is None:
        return UNREADABLE
    segments, notes = _segments(elf, stream)
    order = elf.order
    build_id = _build_id(notes, order)
    raw = _section_table(elf, stream)
    layout = zlib.crc32(raw[1]) if raw else 0
    if not tables and build_id:
        return ElfImage(segments=segments, build_id=build_id, layout=layout)
    sections = _sections(elf, stream, raw)
    by_name = {s.name: s for s in sections}
    build_id = build_id or _build_id(_read(stream, by_name.get(".note.gnu.build-id")), order)
    if not tables:
        return ElfImage(segments=segments, build_id=build_id, layout=layout)
    section_ends = {s.index: s.addr + s.size for s in sections}
    symtab_ = _table(stream, elf, sections, by_name.get(".symtab"), section_ends)
    # A full .symtab holds every symbol .dynsym does: read .dynsym only
    # without one. A .symtab with fewer entries than .dynsym was cut down
    # (strip --strip-unneeded, say), and read_dynsym serves what it misses.
    dynsym = None if symtab_ else _table(stream, elf, sections, by_name.get(".dynsym"),
                                         section_ends)
    symtab_sec, dynsym_sec = by_name.get(".symtab"), by_name.get(".dynsym")
    partial = symtab_ is not None and dynsym_sec is not None and \
        (symtab_sec.size if symtab_sec else 0) < dynsym_sec.size
    return ElfImage(
        segments=segments,
        build_id=build_id,
        debuglink=_debuglink(_read(stream, by_name.get(".gnu_debuglink")), order),
        symtab=symtab_,
        dynsym=dynsym,
        debugdata=_read(stream, by_name.get(".gnu_debugdata")),
        more_in_dynsym=partial,
        layout=layout,
    )


def read_dynsym(path: str, expected: tuple | None = None) -> symtab.SymbolTable | None:
    """The .dynsym of a file whose .symtab was read first; `expected`: the
    file's identity then, so that a path reused since reads nothing."""
    stream = open_regular(path)
    if stream is None:
        return None
    with stream:
        if expected is not None and identity(os.fstat(stream.fileno())) != expected:
            return None
        elf = _header(stream)
        if elf is None:
            return None
        sections = _sections(elf, stream, _section_table(elf, stream))
        by_name = {s.name: s for s in sections}
        return _table(stream, elf, sections, by_name.get(".dynsym"),
                      {s.index: s.addr + s.size for s in sections})


@dataclasses.dataclass(frozen=True)
class SectionData:
    """One section's contents, where the file says it is loaded, and its
    flags (SHF_COMPRESSED: `data` is still compressed)."""

    name: str
    addr: int  # sh_addr: the ELF vaddr of its first byte (0 if not loaded)
    offset: int  # sh_offset
    flags: int
    data: bytes


SHF_COMPRESSED = 0x800
SHF_EXECINSTR = 0x4
ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD = 1, 2


def compression_header(data: bytes, elfclass: int, little: bool) -> tuple[int, int, int]:
    """(ch_type, uncompressed size, header size) of an SHF_COMPRESSED
    section's contents (its Elf32/Elf64_Chdr); struct.error if too short."""
    order = "<" if little else ">"
    if elfclass == 64:
        ch_type, _reserved, size, _align = struct.unpack_from(order + "IIQQ", data)
        return ch_type, size, 24
    ch_type, size, _align = struct.unpack_from(order + "III", data)
    return ch_type, size, 12


class CompressionError(Malformed):
    """A compressed section that is damaged, or compressed in an unknown way."""


class ZstdUnavailable(CompressionError):
    """zstd, without the optional zstandard module to read it."""


def uncompress(data: bytes, flags: int, name: str, elfclass: int, little: bool, *,
               limit: int, head: int = 0) -> bytes:
    """A section's contents as its readers need them: SHF_COMPRESSED (zlib,
    or zstd with the optional zstandard module) and GNU's .zdebug_ ("ZLIB",
    the size, zlib) inflated, never past the size their header gives nor
    `limit`; `head` > 0: only the first `head` bytes (`data` may then be the
    section's start alone). Plain sections come back as they are."""
    if flags & SHF_COMPRESSED:
        try:
            ch_type, size, at = compression_header(data, elfclass, little)
        except struct.error:
            raise CompressionError(f"{name}: its compression header is cut short") from None
    elif name.startswith(".zdebug"):
        if data[:4] != b"ZLIB" or len(data) < 12:
            raise CompressionError(f"{name} without its ZLIB header")
        ch_type, size, at = ELFCOMPRESS_ZLIB, int.from_bytes(data[4:12], "big"), 12
    else:
        return data[:head] if head else data
    if size > limit:
        raise CompressionError(f"{name} claims {size} bytes uncompressed, past {limit}")
    wanted = min(head, size) if head else size
    try:
        if ch_type == ELFCOMPRESS_ZLIB:
            # never past the size the header gives: a hostile stream may inflate without end
            out = zlib.decompressobj().decompress(data[at:], wanted)
        elif ch_type == ELFCOMPRESS_ZSTD:
            try:
                import zstandard  # optional: only some debug files use zstd
            except ImportError:
                raise ZstdUnavailable(f"{name} is compressed with zstd") from None
            out = zstandard.ZstdDecompressor().decompress(data[at:],
                                                          max_output_size=size)[:wanted]
        else:
            raise CompressionError(f"{name}: compression type {ch_type}")
    except CompressionError:
        raise
    except Exception as err:  # noqa: BLE001 - zlib's and zstandard's errors alike
        raise CompressionError(f"{name}: {err}") from None
    if len(out) != wanted:
        raise CompressionError(f"{name}: its size differs from its compression header's")
    return out


def uncompressed_size(head: bytes, flags: int, name: str, elfclass: int, little: bool,
                      size: int) -> int:
    """The size a section of `size` bytes (`head`: its start) has once
    uncompressed."""
    if flags & SHF_COMPRESSED:
        return compression_header(head, elfclass, little)[1]
    if name.startswith(".zdebug") and head[:4] == b"ZLIB":
        return int.from_bytes(head[4:12], "big")
    return size


def read_sections(stream: BinaryIO, names: tuple[str, ...]) -> dict[str, SectionData]:
    """The named sections of an open ELF file that exist and could be read
    whole (a missing, empty or NOBITS section is left out)."""
    stream.seek(0)
    elf = _header(stream)
    if elf is None:
        return {}
    out = {}
    for sec in _sections(elf, stream, _section_table(elf, stream)):
        if sec.name in names and sec.name not in out:
            data = _read(stream, sec)
            if data is not None:
                out[sec.name] = SectionData(sec.name, sec.addr, sec.offset, sec.flags, data)
    return out


# The header and section records, for readers of other sections (DWARF).
ElfHeader = _Header
Section = _Section


def section_headers(stream: BinaryIO) -> tuple[ElfHeader, list[Section]] | None:
    """The ELF header and every section's header (named) of an open file;
    None if it is not ELF."""
    stream.seek(0)
    header = _header(stream)
    if header is None:
        return None
    return header, _sections(header, stream, _section_table(header, stream))


def read_debuglink(stream: BinaryIO) -> tuple[str, int] | None:
    """(file name, CRC-32) of an open ELF file's .gnu_debuglink, if any."""
    layout = elf_layout(stream)
    found = read_sections(stream, (".gnu_debuglink",)).get(".gnu_debuglink")
    if layout is None or found is None:
        return None
    return _debuglink(found.data, "<" if layout[1] else ">")


def elf_layout(stream: BinaryIO) -> tuple[int, bool] | None:
    """(ELF class 32 or 64, little-endian) of an open ELF file, None if not ELF."""
    stream.seek(0)
    elf = _header(stream)
    return (elf.elfclass, elf.little_endian) if elf else None


def read_image_file(path: str, tables: bool = True) -> ElfImage:
    stream = open_regular(path)
    if stream is None:
        return UNREADABLE
    with stream:
        return read_image(stream, tables)


def read_image_bytes(data: bytes) -> ElfImage:
    return read_image(io.BytesIO(data))


_PHDR = {  # (class, order) -> program header layout: type, offset, vaddr, filesz
    (64, "<"): struct.Struct("<IIQQQQQQ"), (64, ">"): struct.Struct(">IIQQQQQQ"),
    (32, "<"): struct.Struct("<IIIIIIII"), (32, ">"): struct.Struct(">IIIIIIII"),
}
PT_LOAD, PT_NOTE = 1, 4
_MAX_PHDRS = 4096


def _segments(elf: _Header, stream) -> tuple[tuple[LoadSegment, ...], bytes]:
    """PT_LOAD segments and PT_NOTE contents."""
    loads, notes = [], b""
    try:
        layout = _PHDR[(elf.elfclass, elf.order)]
        count, size, at = elf.phnum, elf.phentsize, elf.phoff
        if not 0 < count <= _MAX_PHDRS or size < layout.size:
            return (), b""
        stream.seek(at)
        table = stream.read(count * size)
        for i in range(len(table) // size):
            fields = layout.unpack_from(table, i * size)
            if elf.elfclass == 64:
                ptype, _flags, offset, vaddr, _paddr, filesz = fields[:6]
            else:
                ptype, offset, vaddr, _paddr, filesz = fields[:5]
            if ptype == PT_LOAD:
                loads.append(LoadSegment(offset, vaddr, filesz))
            elif ptype == PT_NOTE and len(notes) + filesz <= _MAX_NOTES:
                stream.seek(offset)
                notes += stream.read(filesz)
    except (OSError, struct.error, ValueError, OverflowError):
        pass
    return tuple(loads), notes


_SHDR = {64: "IIQQQQIIQQ", 32: "IIIIIIIIII"}  # name type flags addr offset size link ...
SHT_NOBITS = 8
SHN_XINDEX = 0xFFFF
_MAX_SECTIONS = 1 << 18


def _section_table(elf: _Header, stream) -> tuple[struct.Struct, bytes] | None:
    """The raw section header table and its record layout."""
    try:
        layout = struct.Struct(elf.order + _SHDR[elf.elfclass])
        at, size, count = elf.shoff, elf.shentsize, elf.shnum
        if not at or size < layout.size:
            return None
        stream.seek(at)
        first = stream.read(layout.size)
        count = count or layout.unpack(first)[5]  # extended numbering: the count is in section 0
        if not 0 < count <= _MAX_SECTIONS:
            return None
        stream.seek(at)
        return layout, stream.read(count * size)
    except (OSError, struct.error, ValueError, OverflowError):
        return None


def _sections(elf: _Header, stream, raw: tuple[struct.Struct, bytes] | None) -> list[_Section]:
    """Section headers, with their names."""
    if raw is None:
        return []
    layout, table = raw
    size = elf.shentsize
    headers = [layout.unpack_from(table, i * size) for i in range(len(table) // size)]
    if not headers:
        return []
    names_index = headers[0][6] if elf.shstrndx == SHN_XINDEX else elf.shstrndx
    names = b""
    if 0 < names_index < len(headers):
        h = headers[names_index]
        names = _read(stream, _Section(names_index, "", h[1], h[4], h[5], h[3], h[6])) or b""
    out = []
    for i, (name, type_, flags, addr, offset, size_, link, *_rest) in enumerate(headers):
        end = names.find(b"\0", name)
        label = names[name:end].decode("utf-8", "replace") if 0 <= name < len(names) and end >= 0 else ""
        out.append(_Section(i, label, type_, offset, size_, addr, link, flags))
    return out


def _read(stream, sec: _Section | None) -> bytes | None:
    if sec is None or sec.type == SHT_NOBITS or not 0 < sec.size < _MAX_SECTION:
        return None
    try:
        stream.seek(sec.offset)
        data = stream.read(sec.size)
    except (OSError, ValueError, OverflowError):
        return None
    return data if len(data) == sec.size else None


def _table(stream, elf: _Header, sections: list[_Section], sec: _Section | None,
           section_ends: dict[int, int]) -> symtab.SymbolTable | None:
    raw = _read(stream, sec)
    if raw is None or not 0 <= sec.link < len(sections):
        return None
    strtab = _read(stream, sections[sec.link]) or b""
    code = frozenset(s.index for s in sections if s.flags & SHF_EXECINSTR)
    table = symtab.build_from_section(raw, strtab, section_ends, elf.elfclass,
                                      elf.little_endian, code)
    return table if len(table) else None


def _notes(data: bytes, order: str):
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(order + "III", data, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        end = desc_at + (descsz + 3) // 4 * 4
        if end > len(data):
            return
        yield data[name_at:name_at + namesz].rstrip(b"\0"), ntype, data[desc_at:desc_at + descsz]
        pos = end


def _build_id(data: bytes | None, order: str) -> bytes | None:
    for name, ntype, desc in _notes(data or b"", order):
        if name == b"GNU" and ntype == NT_GNU_BUILD_ID and desc:
            return desc
    return None


def _debuglink(data: bytes | None, order: str) -> tuple[str, int] | None:
    if not data or b"\0" not in data:
        return None
    name_end = data.index(b"\0")
    crc_at = (name_end + 1 + 3) // 4 * 4
    if name_end == 0 or crc_at + 4 > len(data):
        return None
    name = data[:name_end].decode("utf-8", "surrogateescape")
    if "/" in name:  # a plain file name, never a path that leaves the search dirs
        return None
    return name, struct.unpack_from(order + "I", data, crc_at)[0]
