"""DWARF 2-5 line tables (.debug_line): address -> (file, line, column).

A unit's line program is run once into rows, split into sequences; an
address is answered by the row llvm-symbolizer answers it by: in the first
sequence ending above it, the last row at or below it (where two rows
share an address, the later). File names are made absolute as LLVM prints
them: the file's directory, then the unit's compilation directory, joined
in front of a relative name.
"""
from __future__ import annotations

import bisect
import dataclasses
import posixpath

from profiler.binary.leb128 import sleb, uleb
from profiler.symbolize.dwarf_forms import (F_IMPLICIT_CONST, F_INDIRECT, F_REF1, F_REF2, F_REF4,
                                            F_REF8, F_REF_ADDR, F_REF_UDATA, STRING_FORMS)
from profiler.symbolize.dwarf_units import DwarfError, Unsupported, cstring

_LNCT_PATH, _LNCT_DIRECTORY_INDEX = 1, 2
# forms that mean nothing outside .debug_info
_NOT_IN_LINE_TABLES = frozenset((F_INDIRECT, F_IMPLICIT_CONST, F_REF1, F_REF2, F_REF4, F_REF8,
                                 F_REF_ADDR, F_REF_UDATA))


class LineTable:
    """One line program's rows: parallel arrays, sequences as [first, end)
    index ranges whose last row is the end_sequence address. File names
    are joined with a unit's compilation directory when asked: units may
    share a program."""

    def __init__(self, entries: list[tuple[str, int]], dirs: list[str], addresses: list[int],
                 files_of: list[int], lines: list[int], columns: list[int],
                 sequences: list[tuple[int, int, int]], version: int) -> None:
        self.entries = entries  # file number -> (name, directory number); None: no file
        self.dirs = dirs
        self.addresses, self.file_of, self.line_of, self.column_of = \
            addresses, files_of, lines, columns
        # LLVM's order: by end address, ties in table order (its sort is not
        # stable; two identical ranges are folded code, either row is true)
        self.sequences = sorted(sequences, key=lambda s: s[0])
        self._highs = [s[0] for s in self.sequences]
        self.version = version
        self._paths: dict[tuple[int, str], str] = {}

    def file(self, index: int, comp_dir: str) -> str:
        """The path of a file number as llvm-symbolizer prints it ("" when
        there is none)."""
        key = (index, comp_dir)
        found = self._paths.get(key)
        if found is None:
            entry = self.entries[index] if 0 <= index < len(self.entries) else None
            found = "" if entry is None else _join(comp_dir, self.dirs, entry[0], entry[1],
                                                   self.version)
            self._paths[key] = found
        return found

    def row(self, address: int) -> int | None:
        """The row index answering an address, or None: in the first
        sequence ending above it, if that one starts at or below it, the
        last row at or below it (LLVM's lookupAddress and findRowInSeq)."""
        i = bisect.bisect_right(self._highs, address)
        if i == len(self.sequences):
            return None
        _high, first, end = self.sequences[i]
        if address < self.addresses[first]:
            return None
        return bisect.bisect_right(self.addresses, address, first + 1, end - 1) - 1


def read_line_table(dwarf, unit, offset: int) -> LineTable:
    """Run the line program at `offset` in .debug_line for `unit`."""
    data = dwarf.s.get(".debug_line", b"")
    order = dwarf.byteorder
    try:
        return _read(dwarf, unit, data, offset, order)
    except (IndexError, ValueError) as err:
        raise DwarfError(f"line program at 0x{offset:x}: {err or 'ends past .debug_line'}") \
            from None


def _read(dwarf, unit, data: bytes, offset: int, order: str) -> LineTable:
    pos = offset
    length = int.from_bytes(data[pos:pos + 4], order)
    offset_size, pos = 4, pos + 4
    if length == 0xFFFFFFFF:
        length = int.from_bytes(data[pos:pos + 8], order)
        offset_size, pos = 8, pos + 8
    end = pos + length
    if end > len(data):
        raise DwarfError(f"line program at 0x{offset:x} ends past .debug_line")
    version = int.from_bytes(data[pos:pos + 2], order)
    pos += 2
    if not 2 <= version <= 5:
        raise Unsupported(f"line table version {version}")
    addr_size = unit.addr_size
    if version >= 5:
        addr_size = data[pos]
        pos += 2  # address size, segment selector size
    header_length = int.from_bytes(data[pos:pos + offset_size], order)
    pos += offset_size
    program = pos + header_length
    min_inst = data[pos]
    pos += 1
    if version >= 4:
        pos += 1  # maximum operations per instruction: VLIW only
    # default_is_stmt is not read: statement or not, every row answers lookups
    line_base = data[pos + 1] - 256 if data[pos + 1] > 127 else data[pos + 1]
    line_range, opcode_base = data[pos + 2], data[pos + 3]
    pos += 4
    if line_range == 0:
        raise DwarfError("line_range 0")
    arg_counts = list(data[pos:pos + opcode_base - 1])
    pos += opcode_base - 1

    if program > end:
        raise DwarfError("a line program header longer than its program")
    if version >= 5:
        dirs, pos = _entries_v5(dwarf, unit, data, pos, program, offset_size)
        files, pos = _entries_v5(dwarf, unit, data, pos, program, offset_size)
        dir_names = [d[0] for d in dirs]
        entries: list = files
    else:
        dir_names = []
        while data[pos]:
            name, pos = cstring(data, pos)
            dir_names.append(name.decode("utf-8", "surrogateescape"))
        pos += 1
        # file 0 does not exist before DWARF 5: a row or call naming it has no file
        entries = [None]
        while data[pos]:
            name, pos = cstring(data, pos)
            index, pos = uleb(data, pos)
            _mtime, pos = uleb(data, pos)
            _size, pos = uleb(data, pos)
            entries.append((name.decode("utf-8", "surrogateescape"), index))

    addresses: list[int] = []
    file_of: list[int] = []
    line_of: list[int] = []
    column_of: list[int] = []
    sequences: list[tuple[int, int, int]] = []
    pos = program
    address, file, line, column, first = 0, 1, 1, 0, 0
    adjust_base = 255 - opcode_base
    special_addr = [(k // line_range) * min_inst for k in range(adjust_base + 1)]
    special_line = [line_base + k % line_range for k in range(adjust_base + 1)]
    top = (1 << (8 * addr_size)) - 1
    while pos < end:
        op = data[pos]
        pos += 1
        if op >= opcode_base:
            k = op - opcode_base
            address += special_addr[k]
            line += special_line[k]
            addresses.append(address)
            file_of.append(file)
            line_of.append(line)
            column_of.append(column)
        elif op == 0:
            size, pos = uleb(data, pos)
            sub_end = pos + size
            sub = data[pos] if size else 0
            if sub == 1:  # end_sequence
                addresses.append(address)
                file_of.append(file)
                line_of.append(line)
                column_of.append(column)
                low = addresses[first]
                # sequences of discarded code (address 0, or the all-ones
                # tombstone) and empty ones answer nothing
                if len(addresses) - first >= 2 and 0 < low < address and low < top - 1:
                    sequences.append((address, first, len(addresses)))
                address, file, line, column, first = 0, 1, 1, 0, len(addresses)
            elif sub == 2:  # set_address
                address = int.from_bytes(data[pos + 1:sub_end], order)
            elif sub == 3 and version < 5:  # define_file
                name, at = cstring(data, pos + 1)
                index, _at = uleb(data, at)
                entries.append((name.decode("utf-8", "surrogateescape"), index))
            pos = sub_end
        elif op == 1:  # copy
            addresses.append(address)
            file_of.append(file)
            line_of.append(line)
            column_of.append(column)
        elif op == 2:  # advance_pc
            step, pos = uleb(data, pos)
            address += step * min_inst
        elif op == 3:  # advance_line
            step, pos = sleb(data, pos)
            line += step
        elif op == 4:  # set_file
            file, pos = uleb(data, pos)
        elif op == 5:  # set_column
            column, pos = uleb(data, pos)
        elif op == 8:  # const_add_pc
            address += special_addr[255 - opcode_base]
        elif op == 9:  # fixed_advance_pc
            address += int.from_bytes(data[pos:pos + 2], order)
            pos += 2
        elif op in (6, 7, 10, 11):  # flags a lookup does not use
            pass
        else:  # set_isa, and opcodes of later versions: step over their operands
            for _ in range(arg_counts[op - 1] if op - 1 < len(arg_counts) else 0):
                _value, pos = uleb(data, pos)
    if len(addresses) > first:
        del addresses[first:], file_of[first:], line_of[first:], column_of[first:]
    return LineTable(entries, dir_names, addresses, file_of, line_of, column_of, sequences,
                     version)


def _entries_v5(dwarf, unit, data: bytes, pos: int, limit: int, offset_size: int):
    """A DWARF 5 directory or file table: [(name, directory index)], all
    of it before `limit` (the program's start)."""
    count = data[pos]
    pos += 1
    formats = []
    for _ in range(count):
        kind, pos = uleb(data, pos)
        form, pos = uleb(data, pos)
        formats.append((kind, form))
    n, pos = uleb(data, pos)
    if n and (not formats or n > limit - pos):  # each entry takes a byte at least
        raise DwarfError(f"{n} directory or file entries in {limit - pos} bytes")
    # the forms are .debug_info's, with the line table's offset size
    view = dataclasses.replace(unit, offset_size=offset_size)
    out = []
    for _ in range(n):
        name, index = "", 0
        for kind, form in formats:
            if form in _NOT_IN_LINE_TABLES:
                raise DwarfError(f"a line table entry in form 0x{form:x}")
            value, pos = dwarf.value(view, pos, form, 0, data)
            if pos > limit:
                raise DwarfError("directory or file entries past the line program's header")
            if kind == _LNCT_PATH and form in STRING_FORMS:
                name = dwarf.string(view, form, value)
            elif kind == _LNCT_DIRECTORY_INDEX and isinstance(value, int):
                index = value
        out.append((name, index))
    return out, pos


def _join(comp_dir: str, dirs: list[str], name: str, index: int, version: int) -> str:
    if posixpath.isabs(name):
        return name
    # Before DWARF 5, directory 0 is the compilation directory and the
    # list starts at 1; from 5 on, directory 0 is listed (and is it).
    # From 5 on, directory 0 is listed (the compilation directory, as the
    # producer wrote it); a relative one is still joined to DW_AT_comp_dir,
    # as LLVM 14 and binutils do (glibc's ./misc/./misc/syslog.c).
    if version >= 5:
        directory = dirs[index] if 0 <= index < len(dirs) else ""
    else:
        directory = dirs[index - 1] if 1 <= index <= len(dirs) else ""
    if not posixpath.isabs(directory) and comp_dir:
        directory = posixpath.join(comp_dir, directory) if directory else comp_dir
    return posixpath.join(directory, name) if directory else name
