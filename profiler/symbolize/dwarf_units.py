"""DWARF 2-5 debugging information entries, read for source lines.

What a source-line lookup needs from .debug_info and its companions: the
units and their headers, each unit's abbreviations, the attributes of one
entry (strings, addresses and ranges in every form GCC, Clang and rustc
write, split into .debug_str_offsets, .debug_addr, .debug_rnglists), and a
walk that skips everything else fast. Written here rather than taken from
pyelftools, which builds an object per entry and attribute: 15 s for 5,000
addresses of libpython3.11, where this reader takes 0.9 s.

Anything this reader does not read (type units aside: split DWARF, dwz's
alternate file, an unknown form) raises Unsupported, and the caller hands
the object to llvm-symbolizer; malformed data raises DwarfError. Neither
may leave a wrong answer behind.
"""
from __future__ import annotations

import bisect
import dataclasses
import struct
from typing import BinaryIO

from profiler.binary import elf
from profiler.binary.leb128 import Malformed, sleb, uleb
from profiler.symbolize.dwarf_forms import (
    ADDRX_FORMS, AT_ADDR_BASE, AT_GNU_ADDR_BASE, AT_GNU_RANGES_BASE, AT_HIGH_PC, AT_LOW_PC,
    AT_RANGES, AT_RNGLISTS_BASE, AT_STR_OFFSETS_BASE, CONSTANT_FORMS, FIXED_SIZES, F_ADDR,
    F_ADDRX, F_ADDRX1, F_ADDRX2, F_ADDRX3, F_ADDRX4, F_BLOCK, F_BLOCK1, F_BLOCK2, F_BLOCK4,
    F_DATA1, F_DATA2, F_DATA4, F_DATA8, F_EXPRLOC, F_FLAG, F_FLAG_PRESENT, F_GNU_ADDR_INDEX,
    F_GNU_REF_ALT, F_GNU_STRP_ALT, F_GNU_STR_INDEX, F_IMPLICIT_CONST, F_INDIRECT, F_LINE_STRP,
    F_LOCLISTX, F_REF_ADDR, F_REF_SUP4, F_REF_SUP8, F_REF_UDATA, F_RNGLISTX, F_SDATA,
    F_SEC_OFFSET, F_STRING, F_STRP, F_STRP_SUP, F_STRX, F_STRX1, F_STRX2, F_STRX3, F_STRX4,
    F_UDATA, OFFSET_FORMS, REF_LOCAL_SIZES, SECTIONS, STRX_FORMS, UT_COMPILE, UT_PARTIAL,
    UT_SKELETON, UT_SPLIT_COMPILE, UT_SPLIT_TYPE, UT_TYPE, WANTED_ATTRIBUTES, section_offset)

# Malformed DWARF: the one class every binary reader here raises for bad bytes
DwarfError = Malformed
_SECTION_LIMIT = 1 << 30  # uncompressed; a larger claim is a damaged header


class Unsupported(Exception):
    """DWARF this reader does not read (the reason is its message)."""


def cstring(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


# ---------------------------------------------------------------- sections


def read_dwarf_sections(f: BinaryIO) -> tuple[dict[str, bytes], bool]:
    """The DWARF sections of an open ELF file, uncompressed, and whether it
    is little-endian. zstd without the zstandard module raises Unsupported."""
    found = elf.section_headers(f)
    if found is None:
        raise DwarfError("not an ELF file")
    header, _sections = found
    wanted = SECTIONS + tuple(".zdebug_" + n[len(".debug_"):] for n in SECTIONS)
    out: dict[str, bytes] = {}
    for name, sec in elf.read_sections(f, wanted).items():
        try:
            data = elf.uncompress(sec.data, sec.flags, name, header.elfclass,
                                  header.little_endian, limit=_SECTION_LIMIT)
        except elf.ZstdUnavailable:
            raise Unsupported("zstd-compressed debug sections") from None
        out.setdefault(".debug_" + name.split("debug_", 1)[1], data)
    return out, header.little_endian


# ---------------------------------------------------------------- units


@dataclasses.dataclass
class Unit:
    offset: int  # of its header in .debug_info
    end: int
    version: int
    unit_type: int
    addr_size: int
    offset_size: int
    abbrev_offset: int
    die_offset: int  # its first entry
    # from its unit entry, once read:
    str_offsets_base: int = -1
    addr_base: int = -1
    rnglists_base: int = -1
    low_pc: int = 0  # the base address of its ranges
    top: dict | None = None


class Dwarf:
    """One object's DWARF: units found lazily, entries read on demand."""

    def __init__(self, sections: dict[str, bytes], little: bool) -> None:
        self.s = sections
        self.info = sections.get(".debug_info", b"")
        self.order = "<" if little else ">"
        self.byteorder = "little" if little else "big"
        self.units = self._units()
        self._starts = [u.offset for u in self.units]
        self._abbrevs: dict[int, dict[int, tuple]] = {}
        self._plans: dict[tuple, tuple] = {}

    def _units(self) -> list[Unit]:
        units, pos, info = [], 0, self.info
        u32, u16 = struct.Struct(self.order + "I"), struct.Struct(self.order + "H")
        while pos + 11 <= len(info):
            (length,) = u32.unpack_from(info, pos)
            offset_size, at = 4, pos + 4
            if length == 0xFFFFFFFF:
                length = int.from_bytes(info[pos + 4:pos + 12], self.byteorder)
                offset_size, at = 8, pos + 12
            elif length >= 0xFFFFFFF0:
                raise DwarfError(f"unit at 0x{pos:x}: reserved length 0x{length:x}")
            end = at + length
            if end > len(info):
                raise DwarfError(f"unit at 0x{pos:x} ends past .debug_info")
            (version,) = u16.unpack_from(info, at)
            at += 2
            if version == 5:
                unit_type, addr_size = info[at], info[at + 1]
                abbrev = int.from_bytes(info[at + 2:at + 2 + offset_size], self.byteorder)
                at += 2 + offset_size
                if unit_type in (UT_SKELETON, UT_SPLIT_COMPILE):
                    raise Unsupported("split DWARF (.dwo files)")
                if unit_type in (UT_TYPE, UT_SPLIT_TYPE):
                    at += 8 + offset_size
                elif unit_type not in (UT_COMPILE, UT_PARTIAL):
                    raise DwarfError(f"unit at 0x{pos:x}: type 0x{unit_type:x}")
            elif 2 <= version <= 4:
                abbrev = int.from_bytes(info[at:at + offset_size], self.byteorder)
                addr_size = info[at + offset_size]
                at += offset_size + 1
                unit_type = UT_COMPILE
            else:
                raise Unsupported(f"DWARF version {version}")
            if addr_size not in (4, 8):
                raise DwarfError(f"unit at 0x{pos:x}: address size {addr_size}")
            units.append(Unit(pos, end, version, unit_type, addr_size, offset_size, abbrev, at))
            pos = end
        return units

    def unit_at(self, offset: int) -> Unit:
        """The unit holding a .debug_info offset."""
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0 or offset >= self.units[i].end:
            raise DwarfError(f"reference 0x{offset:x} outside every unit")
        return self.units[i]

    # ------------------------------------------------------------ abbreviations

    def abbrevs(self, offset: int) -> dict[int, tuple]:
        """code -> (tag, has_children, ((attribute, form, implicit), ...))."""
        table = self._abbrevs.get(offset)
        if table is not None:
            return table
        data, pos, table = self.s.get(".debug_abbrev", b""), offset, {}
        try:
            while True:
                code, pos = uleb(data, pos)
                if code == 0:
                    break
                tag, pos = uleb(data, pos)
                children = data[pos]
                pos += 1
                specs = []
                while True:
                    attr, pos = uleb(data, pos)
                    form, pos = uleb(data, pos)
                    implicit = 0
                    if form == F_IMPLICIT_CONST:
                        implicit, pos = sleb(data, pos)
                    if attr == 0 and form == 0:
                        break
                    specs.append((attr, form, implicit))
                table[code] = (tag, children, tuple(specs))
        except IndexError:
            raise DwarfError(f"abbreviations at 0x{offset:x} end past .debug_abbrev") from None
        self._abbrevs[offset] = table
        return table

    def plan(self, unit: Unit, code: int, abbrev: tuple) -> tuple:
        """How to step over an entry's attributes: runs of fixed sizes
        summed, the variable forms kept."""
        key = (unit.abbrev_offset, code, unit.addr_size, unit.offset_size, unit.version)
        found = self._plans.get(key)
        if found is None:
            steps: list = []
            for _attr, form, _implicit in abbrev[2]:
                size = self._fixed_size(unit, form)
                if size is None:
                    steps.append(-form)
                elif steps and steps[-1] >= 0:
                    steps[-1] += size
                else:
                    steps.append(size)
            found = self._plans[key] = tuple(steps)
        return found

    @staticmethod
    def _fixed_size(unit: Unit, form: int) -> int | None:
        if form in (F_ADDR,):
            return unit.addr_size
        if form in (F_STRP, F_SEC_OFFSET, F_LINE_STRP, F_STRP_SUP, F_GNU_REF_ALT,
                    F_GNU_STRP_ALT):
            return unit.offset_size
        if form == F_REF_ADDR:
            return unit.addr_size if unit.version == 2 else unit.offset_size
        return FIXED_SIZES.get(form)

    def skip(self, unit: Unit, pos: int, steps: tuple, data: bytes | None = None) -> int:
        """The position past attributes of the forms `steps` plans (in
        .debug_info, or in `data`)."""
        data = self.info if data is None else data
        for step in steps:
            if step >= 0:
                pos += step
                continue
            form = -step
            if form in (F_UDATA, F_SDATA, F_REF_UDATA, F_STRX, F_ADDRX, F_LOCLISTX, F_RNGLISTX,
                        F_GNU_ADDR_INDEX, F_GNU_STR_INDEX):
                while data[pos] & 0x80:
                    pos += 1
                pos += 1
            elif form == F_STRING:
                pos = data.index(b"\0", pos) + 1
            elif form in (F_BLOCK, F_EXPRLOC):
                size, pos = uleb(data, pos)
                pos += size
            elif form == F_BLOCK1:
                pos += 1 + data[pos]
            elif form == F_BLOCK2:
                pos += 2 + int.from_bytes(data[pos:pos + 2], self.byteorder)
            elif form == F_BLOCK4:
                pos += 4 + int.from_bytes(data[pos:pos + 4], self.byteorder)
            elif form == F_INDIRECT:
                real, pos = uleb(data, pos)
                if real == F_INDIRECT:
                    raise DwarfError("an indirect form naming an indirect form")
                _value, pos = self.value(unit, pos, real, 0, data)
            else:
                raise Unsupported(f"form 0x{form:x}")
        return pos

    # ------------------------------------------------------------ values

    def value(self, unit: Unit, pos: int, form: int, implicit: int,
              data: bytes | None = None) -> tuple[object, int]:
        """(value, next position) of an attribute in .debug_info (or in
        `data`: a line table's entries): ints for constants, addresses,
        offsets and indexes; absolute .debug_info offsets for references;
        bytes for inline strings; None for blocks."""
        data = self.info if data is None else data
        order = self.byteorder
        if form == F_ADDR:
            return int.from_bytes(data[pos:pos + unit.addr_size], order), pos + unit.addr_size
        size = FIXED_SIZES.get(form)
        if form in (F_DATA1, F_DATA2, F_DATA4, F_DATA8, F_FLAG):
            return int.from_bytes(data[pos:pos + size], order), pos + size
        if form in REF_LOCAL_SIZES:
            size = REF_LOCAL_SIZES[form]
            if size:
                return unit.offset + int.from_bytes(data[pos:pos + size], order), pos + size
            value, pos = uleb(data, pos)
            return unit.offset + value, pos
        if form in (F_STRP, F_SEC_OFFSET, F_LINE_STRP, F_REF_ADDR):
            size = self._fixed_size(unit, form)
            return int.from_bytes(data[pos:pos + size], order), pos + size
        if form in (F_UDATA, F_STRX, F_ADDRX, F_LOCLISTX, F_RNGLISTX, F_GNU_ADDR_INDEX,
                    F_GNU_STR_INDEX):
            return uleb(data, pos)
        if form == F_SDATA:
            return sleb(data, pos)
        if form in (F_STRX1, F_STRX2, F_STRX3, F_STRX4, F_ADDRX1, F_ADDRX2, F_ADDRX3, F_ADDRX4):
            size = FIXED_SIZES[form]
            return int.from_bytes(data[pos:pos + size], order), pos + size
        if form == F_FLAG_PRESENT:
            return 1, pos
        if form == F_IMPLICIT_CONST:
            return implicit, pos
        if form == F_STRING:
            return cstring(data, pos)
        if form == F_INDIRECT:
            real, pos = uleb(data, pos)
            if real == F_INDIRECT:
                raise DwarfError("an indirect form naming an indirect form")
            return self.value(unit, pos, real, implicit, data)
        if form in (F_GNU_REF_ALT, F_GNU_STRP_ALT, F_REF_SUP4, F_REF_SUP8, F_STRP_SUP):
            raise Unsupported("references into a supplementary (dwz) file")
        steps = ((-form,) if FIXED_SIZES.get(form) is None else (FIXED_SIZES[form],))
        return None, self.skip(unit, pos, steps, data)  # blocks, data16, ref_sig8

    def attributes(self, unit: Unit, pos: int, abbrev: tuple) -> tuple[dict, int]:
        """{attribute: (form, value)} of the attributes lookups use, and the
        position after the entry's attributes."""
        out = {}
        for attr, form, implicit in abbrev[2]:
            if form == F_INDIRECT:  # the real form comes first, in the entry
                form, pos = uleb(self.info, pos)
                if form == F_INDIRECT:
                    raise DwarfError("an indirect form naming an indirect form")
            if attr in WANTED_ATTRIBUTES:
                value, pos = self.value(unit, pos, form, implicit)
                out.setdefault(attr, (form, value))  # LLVM's find: the first of a repeated one
            else:
                size = self._fixed_size(unit, form)
                pos = pos + size if size is not None else self.skip(unit, pos, (-form,))
        return out, pos

    def entry(self, offset: int) -> tuple[Unit, int, dict]:
        """(unit, tag, attributes) of the entry at a .debug_info offset."""
        unit = self.unit_at(offset)
        self.top(unit)
        code, pos = uleb(self.info, offset)
        abbrev = self.abbrevs(unit.abbrev_offset).get(code)
        if abbrev is None:
            raise DwarfError(f"entry at 0x{offset:x}: no abbreviation {code}")
        return unit, abbrev[0], self.attributes(unit, pos, abbrev)[0]

    def top(self, unit: Unit) -> dict:
        """The unit's own entry's attributes (and its bases, set on it)."""
        if unit.top is not None:
            return unit.top
        code, pos = uleb(self.info, unit.die_offset)
        abbrev = self.abbrevs(unit.abbrev_offset).get(code)
        if abbrev is None:
            raise DwarfError(f"unit at 0x{unit.offset:x}: no abbreviation {code}")
        attrs, _pos = self.attributes(unit, pos, abbrev)
        for attr, field in ((AT_STR_OFFSETS_BASE, "str_offsets_base"),
                            (AT_ADDR_BASE, "addr_base"), (AT_GNU_ADDR_BASE, "addr_base"),
                            (AT_RNGLISTS_BASE, "rnglists_base")):
            if attr in attrs:
                setattr(unit, field, section_offset(attrs, attr, -1))
        if AT_GNU_RANGES_BASE in attrs:
            raise Unsupported("split DWARF (DW_AT_GNU_ranges_base)")
        if AT_LOW_PC in attrs:
            unit.low_pc = self.address(unit, *attrs[AT_LOW_PC])
        unit.top = {**attrs, 0: abbrev[0]}  # last: a failure above leaves it unread
        return unit.top

    # ------------------------------------------------------------ strings, addresses

    def string(self, unit: Unit, form: int, value) -> str:
        if form == F_STRING:
            raw = value
        elif form == F_STRP:
            raw = cstring(self.s.get(".debug_str", b""), value)[0]
        elif form == F_LINE_STRP:
            raw = cstring(self.s.get(".debug_line_str", b""), value)[0]
        elif form in STRX_FORMS:
            if unit.str_offsets_base < 0:
                return ""  # LLVM finds no string without DW_AT_str_offsets_base either
            at = unit.str_offsets_base + value * unit.offset_size
            table = self.s.get(".debug_str_offsets", b"")
            if at + unit.offset_size > len(table):
                raise DwarfError(f"string index {value} past .debug_str_offsets")
            raw = cstring(self.s.get(".debug_str", b""),
                          int.from_bytes(table[at:at + unit.offset_size], self.byteorder))[0]
        else:
            return ""  # not a string form: LLVM reads no name from it
        return raw.decode("utf-8", "surrogateescape")

    def address(self, unit: Unit, form: int, value) -> int:
        if form in ADDRX_FORMS:
            if unit.addr_base < 0:
                raise Unsupported("an address index without DW_AT_addr_base")
            at = unit.addr_base + value * unit.addr_size
            table = self.s.get(".debug_addr", b"")
            if at + unit.addr_size > len(table):
                raise DwarfError(f"address index {value} past .debug_addr")
            return int.from_bytes(table[at:at + unit.addr_size], self.byteorder)
        if form == F_ADDR:
            return value
        raise DwarfError(f"an address in form 0x{form:x}")

    def ranges(self, unit: Unit, attrs: dict) -> list[tuple[int, int]]:
        """[low, high) pairs of an entry with DW_AT_low_pc/high_pc or DW_AT_ranges."""
        if AT_RANGES in attrs:
            form, value = attrs[AT_RANGES]
            if form == F_RNGLISTX or (form in OFFSET_FORMS and unit.version >= 5):
                return self._rnglist(unit, form, value)
            if form in OFFSET_FORMS:
                return self._ranges_v4(unit, value)
            return []  # a range list in no offset form: LLVM reads none
        if AT_LOW_PC not in attrs or AT_HIGH_PC not in attrs:
            return []
        low = self.address(unit, *attrs[AT_LOW_PC])
        form, value = attrs[AT_HIGH_PC]
        if form in CONSTANT_FORMS:
            high = low + value
        elif form == F_ADDR or form in ADDRX_FORMS:
            high = self.address(unit, form, value)
        else:
            return []
        return [(low, high)]

    def _ranges_v4(self, unit: Unit, offset: int) -> list[tuple[int, int]]:
        data, size, base, out = self.s.get(".debug_ranges", b""), unit.addr_size, unit.low_pc, []
        top = (1 << (8 * size)) - 1
        pos = offset
        while True:
            if pos + 2 * size > len(data):
                raise DwarfError(f"range list at 0x{offset:x} ends past .debug_ranges")
            start = int.from_bytes(data[pos:pos + size], self.byteorder)
            end = int.from_bytes(data[pos + size:pos + 2 * size], self.byteorder)
            pos += 2 * size
            if start == 0 and end == 0:
                return out
            if start == top:
                base = end
            else:
                out.append((base + start, base + end))

    def _rnglist(self, unit: Unit, form: int, value: int) -> list[tuple[int, int]]:
        data = self.s.get(".debug_rnglists", b"")
        if form == F_RNGLISTX:
            if unit.rnglists_base < 0:
                raise Unsupported("a range list index without DW_AT_rnglists_base")
            at = unit.rnglists_base + value * unit.offset_size
            if at + unit.offset_size > len(data):
                raise DwarfError(f"range list index {value} past .debug_rnglists")
            offset = unit.rnglists_base + int.from_bytes(data[at:at + unit.offset_size],
                                                         self.byteorder)
        else:
            offset = value
        base, out, pos, size, order = unit.low_pc, [], offset, unit.addr_size, self.byteorder
        try:
            while True:
                kind = data[pos]
                pos += 1
                if kind == 0:  # DW_RLE_end_of_list
                    return out
                if kind == 1:  # base_addressx
                    index, pos = uleb(data, pos)
                    base = self.address(unit, F_ADDRX, index)
                elif kind in (2, 3):  # startx_endx, startx_length
                    index, pos = uleb(data, pos)
                    start = self.address(unit, F_ADDRX, index)
                    second, pos = uleb(data, pos)
                    out.append((start, self.address(unit, F_ADDRX, second) if kind == 2
                                else start + second))
                elif kind == 4:  # offset_pair
                    start, pos = uleb(data, pos)
                    end, pos = uleb(data, pos)
                    out.append((base + start, base + end))
                elif kind == 5:  # base_address
                    base = int.from_bytes(data[pos:pos + size], order)
                    pos += size
                elif kind == 6:  # start_end
                    out.append((int.from_bytes(data[pos:pos + size], order),
                                int.from_bytes(data[pos + size:pos + 2 * size], order)))
                    pos += 2 * size
                elif kind == 7:  # start_length
                    start = int.from_bytes(data[pos:pos + size], order)
                    length, pos = uleb(data, pos + size)
                    out.append((start, start + length))
                else:
                    raise DwarfError(f"range list entry kind {kind}")
        except IndexError:
            raise DwarfError(f"range list at 0x{offset:x} ends past .debug_rnglists") from None
