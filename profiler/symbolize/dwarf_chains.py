"""Inline chains of addresses, read from DWARF in this process.

For an address: the unit holding it (.debug_aranges, else the unit's own
ranges), the innermost subprogram or inlined-subroutine entry whose ranges
hold it, and its chain of enclosing inlined calls up to the subprogram,
each level named as llvm-symbolizer names it (the linkage name, else the
name, through DW_AT_abstract_origin and DW_AT_specification); the
innermost level's file, line and column from the unit's line table, each
outer one's from the call site (DW_AT_call_file/line/column) of the level
inside it. Units are read only when an address falls in them.
"""
from __future__ import annotations

import bisect
import heapq
from typing import BinaryIO, NamedTuple

from profiler.binary.leb128 import uleb
from profiler.symbolize.dwarf_forms import (AT_ABSTRACT_ORIGIN, AT_CALL_COLUMN, AT_CALL_FILE,
                                            AT_CALL_LINE, AT_COMP_DIR, AT_DECL_LINE,
                                            AT_LINKAGE_NAME, AT_MIPS_LINKAGE_NAME, AT_NAME,
                                            AT_SPECIFICATION, AT_STMT_LIST, TAG_INLINED_SUBROUTINE,
                                            TAG_SUBPROGRAM, constant, reference, section_offset)
from profiler.symbolize.dwarf_linetable import LineTable, read_line_table
from profiler.symbolize.dwarf_units import Dwarf, DwarfError, Unit, read_dwarf_sections


class SourceFrame(NamedTuple):  # a tuple: thousands are made per object, so cheap to make
    """One level of an inline chain."""

    function: str  # as DWARF names it: the linkage (mangled) name when it has one
    file: str  # "" when unknown
    line: int  # 0 when unknown
    column: int = 0
    start_line: int = 0  # the function's DW_AT_decl_line


Chain = tuple[SourceFrame, ...]  # innermost first; () = no lines for the address

_CODE = (TAG_SUBPROGRAM, TAG_INLINED_SUBROUTINE)


class _Node(NamedTuple):
    offset: int  # of its entry in .debug_info
    tag: int
    parent: int  # index of the nearest enclosing subprogram or inlined call, or -1
    call_file: int
    call_line: int
    call_column: int


class _UnitCode:
    """One unit's code entries and line table."""

    def __init__(self, dwarf: Dwarf, unit: Unit, tables: dict[int, LineTable]) -> None:
        top = dwarf.top(unit)
        self.comp_dir = dwarf.string(unit, *top[AT_COMP_DIR]) if AT_COMP_DIR in top else ""
        self.table: LineTable | None = None
        offset = section_offset(top, AT_STMT_LIST, -1)
        if offset >= 0:
            # units may share a program (and hostile ones all of them): run it once
            self.table = tables.get(offset)
            if self.table is None:
                self.table = tables[offset] = read_line_table(dwarf, unit, offset)
        self.nodes: list[_Node] = []
        self.ranges: list[tuple[int, int, int]] = []  # (low, high, node) by low
        self._walk(dwarf, unit)
        self.ranges.sort()

    def _walk(self, dwarf: Dwarf, unit: Unit) -> None:
        data, table = dwarf.info, dwarf.abbrevs(unit.abbrev_offset)
        nodes, ranges = self.nodes, self.ranges
        plans: dict[int, tuple] = {}
        pos, end = unit.die_offset, unit.end
        stack: list[int] = []  # for each open entry with children: the node its children are in
        first = True
        while pos < end:
            offset = pos
            code, pos = uleb(data, pos)
            if code == 0:
                if not stack:
                    raise DwarfError(f"unit at 0x{unit.offset:x}: an unopened entry closed")
                stack.pop()
                if not stack:
                    return
                continue
            abbrev = table.get(code)
            if abbrev is None:
                raise DwarfError(f"entry at 0x{offset:x}: no abbreviation {code}")
            tag = abbrev[0]
            parent = stack[-1] if stack else -1
            inside = parent
            if tag in _CODE:
                attrs, pos = dwarf.attributes(unit, pos, abbrev)
                inside = len(nodes)
                nodes.append(_Node(offset, tag, parent, constant(attrs, AT_CALL_FILE),
                                   constant(attrs, AT_CALL_LINE),
                                   constant(attrs, AT_CALL_COLUMN, 0xFFFF)))
                for low, high in dwarf.ranges(unit, attrs):
                    if 0 < low < high:  # empty, or discarded code (address 0)
                        ranges.append((low, high, inside))
            else:
                steps = plans.get(code)
                if steps is None:
                    steps = plans[code] = dwarf.plan(unit, code, abbrev)
                pos = dwarf.skip(unit, pos, steps)
            if abbrev[1]:
                stack.append(inside)
            elif first:
                return  # a unit entry without children
            first = False

    def innermost(self, addresses: list[int]) -> dict[int, int]:
        """address (sorted input) -> the node of the last entry in
        document order (the innermost) whose ranges hold it. For entries
        nested as DWARF nests them this is what LLVM's AddrDieMap gives;
        where sibling entries overlap (malformed DWARF), LLVM's splitting
        of ranges may pick the other one: a heap keeps this O(n log n)
        where replaying LLVM's map in Python is quadratic on hostile input."""
        out, ranges, live = {}, self.ranges, []
        i, n = 0, len(ranges)
        for a in addresses:
            while i < n and ranges[i][0] <= a:
                heapq.heappush(live, (-ranges[i][2], ranges[i][1]))
                i += 1
            while live and live[0][1] <= a:
                heapq.heappop(live)
            # an entry ended below `a` may hide under a live one: it
            # surfaces, and goes, when the one above it is popped
            if live:
                out[a] = -live[0][0]
        return out


class DwarfChains:
    """Address -> inline chain for one object's DWARF, read in this process."""

    def __init__(self, sections: dict[str, bytes], little: bool = True) -> None:
        self.dwarf = Dwarf(sections, little)
        self._units: dict[int, _UnitCode] = {}
        self._tables: dict[int, LineTable] = {}
        self._names: dict[int, tuple[str, int]] = {}
        self._spans = _disjoint(self._unit_spans())
        self._lows = [s[0] for s in self._spans]

    def _unit_spans(self) -> list[tuple[int, int, int]]:
        """(low, high, unit offset): .debug_aranges, and the unit entries'
        own ranges for the units it leaves out."""
        spans, covered = self._aranges()
        dwarf = self.dwarf
        for unit in dwarf.units:
            if unit.offset in covered or unit.unit_type not in (1, 3):
                continue
            top = dwarf.top(unit)
            spans.extend((low, high, unit.offset) for low, high in dwarf.ranges(unit, top)
                         if 0 < low < high)
        return spans

    def _aranges(self) -> tuple[list[tuple[int, int, int]], set[int]]:
        data, order = self.dwarf.s.get(".debug_aranges", b""), self.dwarf.byteorder
        spans, covered, pos = [], set(), 0
        while pos + 12 <= len(data):
            length, offset_size, at = int.from_bytes(data[pos:pos + 4], order), 4, pos + 4
            if length == 0xFFFFFFFF:
                length, offset_size, at = int.from_bytes(data[pos + 4:pos + 12], order), 8, \
                    pos + 12
            end = at + length
            if end > len(data) or length < 4:
                raise DwarfError(f"address ranges at 0x{pos:x} end past .debug_aranges")
            unit = int.from_bytes(data[at + 2:at + 2 + offset_size], order)
            at += 2 + offset_size
            size, segment = data[at], data[at + 1]
            at += 2
            if size not in (4, 8) or segment:
                raise DwarfError(f"address ranges at 0x{pos:x}: address size {size}")
            at += -(at - pos) % (2 * size)  # tuples align to twice the address size
            covered.add(unit)
            while at + 2 * size <= end:
                low = int.from_bytes(data[at:at + size], order)
                length = int.from_bytes(data[at + size:at + 2 * size], order)
                at += 2 * size
                if low == 0 and length == 0:
                    break
                if low > 0 and length:
                    spans.append((low, low + length, unit))
            pos = end
        return spans, covered

    @classmethod
    def of_file(cls, f: BinaryIO) -> "DwarfChains":
        return cls(*read_dwarf_sections(f))

    def unit_of(self, address: int) -> int | None:
        i = bisect.bisect_right(self._lows, address) - 1
        if i >= 0 and address < self._spans[i][1]:
            return self._spans[i][2]
        return None

    def chains(self, addresses) -> dict[int, Chain]:
        by_unit: dict[int, list[int]] = {}
        out: dict[int, Chain] = {}
        for a in sorted(set(addresses)):
            unit = self.unit_of(a)
            if unit is None:
                out[a] = ()
            else:
                by_unit.setdefault(unit, []).append(a)
        for offset, wanted in by_unit.items():
            code = self._units.get(offset)
            if code is None:
                code = self._units[offset] = _UnitCode(self.dwarf, self.dwarf.unit_at(offset),
                                                       self._tables)
            found = code.innermost(wanted)
            for a in wanted:
                out[a] = self._chain(code, a, found.get(a))
        return out

    def _chain(self, code: _UnitCode, address: int, node: int | None) -> Chain:
        table, comp_dir = code.table, code.comp_dir
        row = table.row(address) if table is not None else None
        if row is None:
            return ()
        file = table.file(table.file_of[row], comp_dir)
        if not file:
            return ()
        # LLVM keeps a row's line in 32 bits and its column in 16
        line, column = table.line_of[row] & 0xFFFFFFFF, table.column_of[row] & 0xFFFF
        if node is None:  # code no subprogram entry covers: the line alone
            return (SourceFrame("", file, line, column),)
        levels = []
        nodes = code.nodes
        while node >= 0:
            entry = nodes[node]
            name, start = self._name(entry.offset)
            levels.append(SourceFrame(name, file, line, column, start))
            if entry.tag == TAG_SUBPROGRAM:
                break
            file = table.file(entry.call_file, comp_dir)
            line, column = entry.call_line, entry.call_column
            if not file:
                return ()
            node = entry.parent
        return tuple(levels)

    def _name(self, offset: int) -> tuple[str, int]:
        """(linkage name, else name; declared line) of an entry, through
        its abstract origin and specification, as llvm-symbolizer looks."""
        found = self._names.get(offset)
        if found is not None:
            return found
        dwarf = self.dwarf
        linkage = name = decl = None
        seen, todo = set(), [offset]
        while todo:  # each attribute from the first entry that has it, in LLVM's order
            at = todo.pop()
            if at in seen:
                continue
            seen.add(at)
            unit, _tag, attrs = dwarf.entry(at)
            for attr in (AT_MIPS_LINKAGE_NAME, AT_LINKAGE_NAME):
                if linkage is None and attr in attrs:
                    linkage = dwarf.string(unit, *attrs[attr])
            if name is None and AT_NAME in attrs:
                name = dwarf.string(unit, *attrs[AT_NAME])
            if decl is None and AT_DECL_LINE in attrs:
                decl = constant(attrs, AT_DECL_LINE)
            for attr in (AT_ABSTRACT_ORIGIN, AT_SPECIFICATION):
                target = reference(attrs, attr)
                if target is not None:
                    todo.append(target)
        found = self._names[offset] = (linkage or name or "", decl or 0)
        return found


def _disjoint(spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Overlapping (low, high, unit) spans made disjoint as LLVM's
    DWARFDebugAranges::construct makes them: between two ends, the span
    goes on with the unit it had while that unit still covers it, else
    starts with the lowest unit offset covering it."""
    ends = sorted([(low, 1, unit) for low, _high, unit in spans] +
                  [(high, 0, unit) for _low, high, unit in spans])
    out: list[list[int]] = []
    live: dict[int, int] = {}  # unit -> how many of its spans cover here
    lowest: list[int] = []  # heap of units, stale ones dropped when seen
    previous = None
    for at, starts, unit in ends:
        if previous is not None and previous < at and live:
            if out and out[-1][1] == previous and live.get(out[-1][2]):
                out[-1][1] = at
            else:
                while not live.get(lowest[0]):
                    heapq.heappop(lowest)
                out.append([previous, at, lowest[0]])
        if starts:
            live[unit] = live.get(unit, 0) + 1
            heapq.heappush(lowest, unit)
        else:
            live[unit] -= 1
            if not live[unit]:
                del live[unit]
        previous = at
    return [tuple(span) for span in out]
