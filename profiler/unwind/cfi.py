"""Call frame information (.eh_frame, .debug_frame) -> the unwind row in
force at one ELF virtual address.

Only the FDE that covers an address is ever decoded: .eh_frame_hdr's sorted
table finds it by binary search; without that table (a debug file's
.debug_frame, a binary linked with --no-eh-frame-hdr) every FDE header is
read once into two sorted arrays, which the disk cache keeps by build-id.
An FDE's program is run once, giving all its rows; rows are interned, so
the unwinder can key its precomputed per-row plan on the row object.

Everything here reads bytes a profiled process controls: a malformed CIE or
FDE reads as "no row" (the unwinder then falls back to the frame pointer),
never as an exception, and every loop is bounded by the section's size.

The parts: cfi_records.py reads CIEs and FDEs, cfi_program.py runs their
CFA instructions into rows, cfi_index.py finds an address's FDE; this module
puts them together per section and per object.
"""
from __future__ import annotations

import array
import bisect
import io
import struct
from typing import Any, BinaryIO, NamedTuple

from profiler.binary.elf import CompressionError, elf_layout, read_sections, uncompress
from profiler.unwind.cfi_index import hdr_index, load_index, save_index, scan_index
# The row types and kinds are the unwinder's vocabulary: named here, where it looks.
from profiler.unwind.cfi_program import (EXPRESSION, OFFSET, REGISTER, SAME, UNDEFINED,  # noqa: F401
                                         VAL_EXPRESSION, VAL_OFFSET, MAX_ROWS, Row, Rule, State,
                                         run_program)
from profiler.unwind.cfi_records import Bad, Cie, Frames, Place


_ROW_CACHE = 1 << 17  # vaddrs per table; a cleared cache only costs re-lookups
_FDE_CACHE = 1 << 13  # decoded FDEs per table
_DECOMPRESSED_MAX = 256 << 20


class _Fde(NamedTuple):
    begin: int
    end: int
    locs: list[int]
    rows: list[Row | None]


class _Source:
    """Finds rows in one frame section through a sorted (start, offset) index."""

    def __init__(self, frames: Frames, starts: array.array, offsets: array.array) -> None:
        self.frames, self.starts, self.offsets = frames, starts, offsets
        self._fdes: dict[int, _Fde | None] = {}
        self._interned: dict[Row, Row] = {}

    def lookup(self, vaddr: int) -> Row | None:
        starts = self.starts
        i = bisect.bisect_right(starts, vaddr) - 1
        # Two FDEs may start at one address (an empty one, say): try both.
        for j in (i, i - 1):
            if j < 0 or (j != i and starts[j] != starts[i]):
                break
            fde = self._fde(self.offsets[j])
            if fde is not None and fde.begin <= vaddr < fde.end:
                k = bisect.bisect_right(fde.locs, vaddr) - 1
                return fde.rows[k] if k >= 0 else None
        return None

    def _fde(self, off: int) -> _Fde | None:
        fdes = self._fdes
        if off in fdes:
            return fdes[off]
        try:
            fde = self._decode(off)
        except Exception:  # noqa: BLE001 - a bad FDE reads as no row, and is not decoded again
            fde = None
        if len(fdes) >= _FDE_CACHE:
            fdes.clear()
        fdes[off] = fde
        return fde

    def _decode(self, off: int) -> _Fde:
        frames = self.frames
        begin, end, cie, start, stop = frames.fde(off)
        if end <= begin:
            raise Bad
        state = State()
        initial = frames.initial.get(cie)
        if initial is None:
            if not run_program(frames, cie, cie.init[0], cie.init[1], state, {}, 0, 1 << 64,
                        lambda loc, s: None)[1]:
                raise Bad
            initial = (state.cfa_reg, state.cfa_offset, state.cfa_expr, dict(state.regs))
            frames.initial[cie] = initial
            state = State()
        state.cfa_reg, state.cfa_offset, state.cfa_expr = initial[:3]
        state.regs = dict(initial[3])
        locs: list[int] = []
        rows: list[Row | None] = []

        def emit(loc: int, s: State) -> None:
            row = self._row(s, cie)
            if locs and locs[-1] == loc:
                rows[-1] = row
                return
            if len(locs) >= MAX_ROWS:
                raise Bad
            locs.append(loc)
            rows.append(row)

        loc, ok = run_program(frames, cie, start, stop, state, initial[3], begin, end, emit)
        if loc < end:
            if not ok:  # rows before the bad instruction stand; from there on, none
                state = State()
            if locs and locs[-1] == loc:
                rows[-1] = self._row(state, cie)
            else:
                locs.append(loc)
                rows.append(self._row(state, cie))
        return _Fde(begin, end, locs, rows)

    def _row(self, s: State, cie: Cie) -> Row | None:
        if s.cfa_reg < 0 and not s.cfa_expr:
            return None  # no CFA rule yet: nothing to unwind with
        row = Row(s.cfa_reg, s.cfa_offset, s.cfa_expr, tuple(sorted(s.regs.items())),
                  cie.ra, cie.signal)
        interned = self._interned.setdefault(row, row)
        if len(self._interned) > _FDE_CACHE * 4:
            self._interned.clear()
        return interned


# ---------------------------------------------------------------- the table


class CfiTable:
    """row_at(ELF vaddr) over one or more frame sections, first match wins."""

    def __init__(self, sources: tuple[Any, ...]) -> None:
        self._sources = sources
        self._rows: dict[int, Row | None] = {}

    def row_at(self, vaddr: int) -> Row | None:
        rows = self._rows
        try:
            return rows[vaddr]
        except KeyError:
            pass
        row = None
        for source in self._sources:
            try:
                row = source.lookup(vaddr)
            except Exception:  # noqa: BLE001 - hostile bytes must read as "no row", whatever broke
                row = None
            if row is not None:
                break
        if len(rows) >= _ROW_CACHE:
            rows.clear()
        rows[vaddr] = row
        return row


def combined(first: CfiTable | None, second: CfiTable | None) -> CfiTable | None:
    """A table that tries `first`, then `second` (an object's .eh_frame,
    then its debug file's .debug_frame)."""
    if first is None or second is None:
        return first if second is None else second
    return CfiTable(first._sources + second._sources)


def cfi_from_bytes(data: bytes) -> CfiTable | None:
    """The CFI of an ELF image held in memory (the vDSO)."""
    return cfi_from_file(io.BytesIO(data))


def cfi_from_file(stream: BinaryIO, *, cache=None,
                  build_id: bytes | None = None) -> CfiTable | None:
    """The CFI of an open ELF file: .eh_frame, then .debug_frame; None when
    it has neither (or neither could be read)."""
    try:
        stream.seek(0)  # both read the ELF header from where the stream stands
        layout = elf_layout(stream)
        if layout is None:
            return None
        elfclass, little = layout
        stream.seek(0)
        sections = read_sections(stream, (".eh_frame", ".eh_frame_hdr", ".debug_frame"))
    except (OSError, ValueError, OverflowError, struct.error, MemoryError):
        return None
    order = "little" if little else "big"
    addr_size = 8 if elfclass == 64 else 4
    sources = []
    for name in (".eh_frame", ".debug_frame"):
        sec = sections.get(name)
        if sec is None:
            continue
        try:
            source = _source(sec, sections.get(".eh_frame_hdr") if name == ".eh_frame" else None,
                             elfclass, order, addr_size, cache, build_id)
        except Exception:  # noqa: BLE001 - a section we cannot index reads as absent
            source = None
        if source is not None:
            sources.append(source)
    return CfiTable(tuple(sources)) if sources else None


def _source(sec, hdr, elfclass: int, order: str, addr_size: int, cache, build_id) -> _Source | None:
    eh = sec.name == ".eh_frame"
    try:  # zstd without the zstandard module, or damage: no CFI from this section
        data = uncompress(sec.data, sec.flags, sec.name, elfclass, order == "little",
                          limit=_DECOMPRESSED_MAX)
    except CompressionError:
        return None
    # datarel in .eh_frame itself is GOT-relative (i386): unknown here, so unread.
    frames = Frames(data, Place(sec.addr if eh else 0, None, addr_size, order), eh)
    if hdr is not None:
        index = hdr_index(hdr, sec.addr, len(data), addr_size, order)
        if index is not None:
            return _Source(frames, *index)
    kind = f"cfi-index{sec.name.replace('.', '-')}-{len(data)}"
    index = load_index(cache, build_id, kind, len(data))
    if index is None:
        index = scan_index(frames)
        save_index(cache, build_id, kind, index)
    return _Source(frames, *index)
