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
"""
from __future__ import annotations

import array
import bisect
import io
import os
import stat
import struct
import zlib
from typing import Any, BinaryIO, NamedTuple

from profiler.binary.elf import SHF_COMPRESSED, elf_layout, read_sections
from profiler.binary.cache import write_private
from profiler.binary.readfile import ours_alone

UNDEFINED, SAME, OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION = range(7)


class Rule(NamedTuple):
    """How one register of the caller is recovered."""

    kind: int
    value: int = 0  # offset, or register number
    expr: bytes = b""  # for EXPRESSION / VAL_EXPRESSION


class Row(NamedTuple):
    """The unwind row in force at one instruction."""

    cfa_reg: int  # DWARF register number, or -1 when the CFA is an expression
    cfa_offset: int
    cfa_expr: bytes
    regs: tuple[tuple[int, Rule], ...]  # every register the CFI mentions, by number
    ra_column: int
    signal_frame: bool


_ROW_CACHE = 1 << 17  # vaddrs per table; a cleared cache only costs re-lookups
_FDE_CACHE = 1 << 13  # decoded FDEs per table
_MAX_ROWS = 1 << 16  # rows per FDE: more is a corrupt program, cut there
_MAX_STATES = 64  # DW_CFA_remember_state nesting
_DECOMPRESSED_MAX = 256 << 20


class _Bad(Exception):
    """Malformed CFI: caught inside this module, never raised out of it."""


# ---------------------------------------------------------------- bytes


class _Cursor:
    """Reads fields from data[pos:end], raising _Bad past `end`."""

    __slots__ = ("data", "pos", "end", "order")

    def __init__(self, data: bytes, pos: int, end: int, order: str) -> None:
        self.data, self.pos, self.end, self.order = data, pos, end, order

    def uint(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise _Bad
        self.pos = p + n
        return int.from_bytes(self.data[p:p + n], self.order)

    def sint(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise _Bad
        self.pos = p + n
        return int.from_bytes(self.data[p:p + n], self.order, signed=True)

    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise _Bad
        self.pos = p + 1
        return self.data[p]

    def uleb(self) -> int:
        data, pos, end = self.data, self.pos, self.end
        result = shift = 0
        while True:
            if pos >= end or shift > 70:  # 11 bytes: no real 64-bit value is longer
                raise _Bad
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                self.pos = pos
                return result

    def sleb(self) -> int:
        data, pos, end = self.data, self.pos, self.end
        result = shift = 0
        while True:
            if pos >= end or shift > 70:
                raise _Bad
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                self.pos = pos
                return result - (1 << shift) if b & 0x40 else result

    def block(self) -> bytes:
        n = self.uleb()
        p = self.pos
        if p + n > self.end:
            raise _Bad
        self.pos = p + n
        return bytes(self.data[p:p + n])

    def cstring(self) -> bytes:
        i = self.data.find(b"\0", self.pos, self.end)
        if i < 0:
            raise _Bad
        s = bytes(self.data[self.pos:i])
        self.pos = i + 1
        return s


class _Place(NamedTuple):
    """Where a section's bytes live, to resolve the pointers inside it."""

    addr: int  # sh_addr: pcrel pointers are relative to addr + position
    datarel: int | None  # DW_EH_PE_datarel base (.eh_frame_hdr's address), if known
    addr_size: int
    order: str


DW_EH_PE_omit = 0xFF


def _pointer(cur: _Cursor, enc: int, place: _Place, strict: bool = True) -> int:
    """A DW_EH_PE-encoded pointer. `strict=False` only steps over it
    (a personality routine: its value does not matter, its size does)."""
    fmt, app = enc & 0x0F, enc & 0x70
    where = place.addr + cur.pos
    if fmt == 0x00:
        v = cur.uint(place.addr_size)
    elif fmt == 0x01:
        v = cur.uleb()
    elif fmt == 0x02:
        v = cur.uint(2)
    elif fmt == 0x03:
        v = cur.uint(4)
    elif fmt == 0x04:
        v = cur.uint(8)
    elif fmt == 0x09:
        v = cur.sleb()
    elif fmt == 0x0A:
        v = cur.sint(2)
    elif fmt == 0x0B:
        v = cur.sint(4)
    elif fmt == 0x0C:
        v = cur.sint(8)
    else:
        raise _Bad
    if not strict:
        return 0
    if app == 0x10:
        v += where
    elif app == 0x30:
        if place.datarel is None:
            raise _Bad
        v += place.datarel
    elif app != 0:
        raise _Bad  # textrel/funcrel/aligned: not emitted for FDEs on our targets
    if enc & 0x80:
        raise _Bad  # indirect: the value is in process memory, not in the file
    return v & ((1 << (8 * place.addr_size)) - 1)


def _range(cur: _Cursor, enc: int, place: _Place) -> int:
    """An FDE's pc_range: the format of the encoding without its application."""
    return _pointer(cur, enc & 0x0F, place)


# ---------------------------------------------------------------- CIEs and FDEs


class _Cie(NamedTuple):
    code_align: int
    data_align: int
    ra: int
    fde_enc: int  # pointer encoding of FDE addresses (absptr in .debug_frame)
    augmented: bool  # 'z': FDEs carry an augmentation data block
    signal: bool
    init: tuple[int, int]  # initial instructions: data[start:end]
    addr_size: int


class _Frames:
    """One .eh_frame or .debug_frame section and what was decoded from it."""

    def __init__(self, data: bytes, place: _Place, eh: bool) -> None:
        self.data, self.place, self.eh = data, place, eh
        self.cies: dict[int, _Cie | None] = {}
        self.initial: dict[_Cie, tuple] = {}  # CIE -> state after its instructions

    def entry(self, off: int) -> tuple[bool, int, int, int, int] | None:
        """(is_cie, CIE offset for an FDE, body start, end, header end) of
        the entry at `off`, None at a terminator."""
        data = self.data
        cur = _Cursor(data, off, len(data), self.place.order)
        length = cur.uint(4)
        if length == 0:
            return None
        wide = length == 0xFFFFFFFF
        if wide:
            length = cur.uint(8)
        end = cur.pos + length
        if end > len(data) or length < 4:
            raise _Bad
        cur.end = end
        id_pos = cur.pos
        # The CIE id / pointer is as wide as the length (as binutils and gdb
        # read it; LLVM's libunwind keeps 4 bytes in .eh_frame, but no
        # assembler emits 64-bit .eh_frame entries).
        cid = cur.uint(8 if wide else 4)
        if self.eh:  # an offset back from this field to the CIE; 0 for a CIE
            return cid == 0, id_pos - cid, cur.pos, end, end
        is_cie = cid == (0xFFFFFFFFFFFFFFFF if wide else 0xFFFFFFFF)
        return is_cie, cid, cur.pos, end, end

    def cie(self, off: int) -> _Cie | None:
        if off in self.cies:
            return self.cies[off]
        try:
            cie = self._parse_cie(off)
        except _Bad:
            cie = None
        self.cies[off] = cie
        return cie

    def _parse_cie(self, off: int) -> _Cie:
        if not 0 <= off < len(self.data):
            raise _Bad
        head = self.entry(off)
        if head is None or not head[0]:
            raise _Bad
        _, _, body, end, _ = head
        place = self.place
        cur = _Cursor(self.data, body, end, place.order)
        version = cur.u8()
        if version not in ((1, 3) if self.eh else (1, 3, 4)):
            raise _Bad
        aug = cur.cstring()
        addr_size = place.addr_size
        if version == 4:
            addr_size = cur.u8()
            if addr_size not in (4, 8) or cur.u8() != 0:  # segment_size
                raise _Bad
        if aug.startswith(b"eh"):  # old GCC: a pointer to exception data
            cur.uint(addr_size)
            aug = aug[2:]
        code_align = cur.uleb()
        data_align = cur.sleb()
        ra = cur.u8() if version == 1 else cur.uleb()
        fde_enc = 0  # absptr
        signal = augmented = False
        if aug.startswith(b"z"):
            augmented = True
            size = cur.uleb()
            stop = cur.pos + size
            if stop > end:
                raise _Bad
            for c in aug[1:]:
                if c == 0x52:  # R
                    fde_enc = cur.u8()
                elif c == 0x50:  # P
                    _pointer(cur, cur.u8(), place, strict=False)
                elif c == 0x4C:  # L: the LSDA encoding, for FDEs' (skipped) data
                    cur.u8()
                elif c == 0x53:  # S
                    signal = True
                elif c in (0x42, 0x47):  # B (arm64 BTI), G (MTE): no data
                    pass
                else:
                    break  # unknown: the size above still lets us skip the rest
            cur.pos = stop
        elif aug:
            raise _Bad  # no 'z': an unknown augmentation's data cannot be skipped
        if fde_enc == DW_EH_PE_omit:
            raise _Bad
        return _Cie(code_align, data_align, ra, fde_enc, augmented, signal,
                    (cur.pos, end), addr_size)

    def fde(self, off: int) -> tuple[int, int, _Cie, int, int]:
        """(pc_begin, pc_end, CIE, instructions start, end) of the FDE at `off`."""
        if not 0 <= off < len(self.data):
            raise _Bad
        head = self.entry(off)
        if head is None or head[0]:
            raise _Bad
        _, cie_off, body, end, _ = head
        cie = self.cie(cie_off)
        if cie is None:
            raise _Bad
        place = self.place
        if cie.addr_size != place.addr_size:
            place = place._replace(addr_size=cie.addr_size)
        cur = _Cursor(self.data, body, end, place.order)
        begin = _pointer(cur, cie.fde_enc, place)
        size = _range(cur, cie.fde_enc, place)
        if cie.augmented:
            n = cur.uleb()
            cur.pos += n
            if cur.pos > end:
                raise _Bad
        return begin, begin + size, cie, cur.pos, end


# ---------------------------------------------------------------- CFA programs


class _State:
    __slots__ = ("cfa_reg", "cfa_offset", "cfa_expr", "regs", "loc")

    def __init__(self, cfa_reg=-1, cfa_offset=0, cfa_expr=b"", regs=None) -> None:
        self.loc = 0
        self.cfa_reg, self.cfa_offset, self.cfa_expr = cfa_reg, cfa_offset, cfa_expr
        self.regs: dict[int, Rule] = regs if regs is not None else {}

    def copy(self) -> "_State":
        return _State(self.cfa_reg, self.cfa_offset, self.cfa_expr, dict(self.regs))


def _run(frames: _Frames, cie: _Cie, start: int, end: int, state: _State,
         initial: dict[int, Rule], loc: int, pc_end: int, emit) -> tuple[int, bool]:
    """Run the CFA instructions in data[start:end] from `loc`; before each
    advance, emit(loc, state) for the row that ends there. Returns the
    final location, and False if an instruction could not be read or is
    unknown there (the rest of the FDE then reads as "no row")."""
    try:
        return _steps(frames, cie, start, end, state, initial, loc, pc_end, emit), True
    except _Bad:
        return state.loc, False


def _steps(frames: _Frames, cie: _Cie, start: int, end: int, state: _State,
           initial: dict[int, Rule], loc: int, pc_end: int, emit) -> int:
    state.loc = loc
    place = frames.place
    cur = _Cursor(frames.data, start, end, place.order)
    regs = state.regs
    ca, da = cie.code_align, cie.data_align
    stack: list[_State] = []
    while cur.pos < end:
        op = cur.u8()
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:  # advance_loc
            delta = low * ca
        elif high == 0x80:  # offset
            regs[low] = Rule(OFFSET, cur.uleb() * da)
            continue
        elif high == 0xC0:  # restore
            _restore(regs, initial, low)
            continue
        elif op == 0x00:  # nop
            continue
        elif op == 0x01:  # set_loc
            target = _pointer(cur, cie.fde_enc, place) if frames.eh else cur.uint(cie.addr_size)
            if target < loc:
                raise _Bad
            delta = target - loc
        elif op == 0x02:
            delta = cur.uint(1) * ca
        elif op == 0x03:
            delta = cur.uint(2) * ca
        elif op == 0x04:
            delta = cur.uint(4) * ca
        elif op == 0x05:  # offset_extended
            reg = cur.uleb()
            regs[reg] = Rule(OFFSET, cur.uleb() * da)
            continue
        elif op == 0x06:  # restore_extended
            _restore(regs, initial, cur.uleb())
            continue
        elif op == 0x07:
            regs[cur.uleb()] = Rule(UNDEFINED)
            continue
        elif op == 0x08:
            regs[cur.uleb()] = Rule(SAME)
            continue
        elif op == 0x09:  # register
            reg = cur.uleb()
            regs[reg] = Rule(REGISTER, cur.uleb())
            continue
        elif op == 0x0A:  # remember_state
            if len(stack) >= _MAX_STATES:
                raise _Bad
            stack.append(state.copy())
            continue
        elif op == 0x0B:  # restore_state: the CFA too (as GCC and readelf do)
            if not stack:
                raise _Bad
            saved = stack.pop()
            state.cfa_reg, state.cfa_offset, state.cfa_expr = \
                saved.cfa_reg, saved.cfa_offset, saved.cfa_expr
            regs.clear()
            regs.update(saved.regs)
            continue
        elif op == 0x0C:  # def_cfa
            state.cfa_reg = cur.uleb()
            state.cfa_offset = cur.uleb()
            state.cfa_expr = b""
            continue
        elif op == 0x0D:  # def_cfa_register
            state.cfa_reg = cur.uleb()
            state.cfa_expr = b""
            continue
        elif op == 0x0E:  # def_cfa_offset
            state.cfa_offset = cur.uleb()
            continue
        elif op == 0x0F:  # def_cfa_expression
            state.cfa_expr = cur.block()
            state.cfa_reg = -1
            state.cfa_offset = 0
            continue
        elif op == 0x10:  # expression
            reg = cur.uleb()
            regs[reg] = Rule(EXPRESSION, 0, cur.block())
            continue
        elif op == 0x11:  # offset_extended_sf
            reg = cur.uleb()
            regs[reg] = Rule(OFFSET, cur.sleb() * da)
            continue
        elif op == 0x12:  # def_cfa_sf
            state.cfa_reg = cur.uleb()
            state.cfa_offset = cur.sleb() * da
            state.cfa_expr = b""
            continue
        elif op == 0x13:  # def_cfa_offset_sf
            state.cfa_offset = cur.sleb() * da
            continue
        elif op == 0x14:  # val_offset
            reg = cur.uleb()
            regs[reg] = Rule(VAL_OFFSET, cur.uleb() * da)
            continue
        elif op == 0x15:  # val_offset_sf
            reg = cur.uleb()
            regs[reg] = Rule(VAL_OFFSET, cur.sleb() * da)
            continue
        elif op == 0x16:  # val_expression
            reg = cur.uleb()
            regs[reg] = Rule(VAL_EXPRESSION, 0, cur.block())
            continue
        elif op == 0x2D:  # GNU_window_save (SPARC) / AARCH64_negate_ra_state: no row change here
            continue
        elif op == 0x2E:  # GNU_args_size: only matters to exception handling
            cur.uleb()
            continue
        elif op == 0x2F:  # GNU_negative_offset_extended
            reg = cur.uleb()
            regs[reg] = Rule(OFFSET, -cur.uleb() * da)
            continue
        else:
            raise _Bad
        if delta:
            emit(loc, state)
            loc += delta
            state.loc = loc
            if loc >= pc_end:
                return loc
    return loc


def _restore(regs: dict[int, Rule], initial: dict[int, Rule], reg: int) -> None:
    rule = initial.get(reg)
    if rule is None:
        regs.pop(reg, None)
    else:
        regs[reg] = rule


# ---------------------------------------------------------------- one section


class _Fde(NamedTuple):
    begin: int
    end: int
    locs: list[int]
    rows: list[Row | None]


class _Source:
    """Finds rows in one frame section through a sorted (start, offset) index."""

    def __init__(self, frames: _Frames, starts: array.array, offsets: array.array) -> None:
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
            raise _Bad
        state = _State()
        initial = frames.initial.get(cie)
        if initial is None:
            if not _run(frames, cie, cie.init[0], cie.init[1], state, {}, 0, 1 << 64,
                        lambda loc, s: None)[1]:
                raise _Bad
            initial = (state.cfa_reg, state.cfa_offset, state.cfa_expr, dict(state.regs))
            frames.initial[cie] = initial
            state = _State()
        state.cfa_reg, state.cfa_offset, state.cfa_expr = initial[:3]
        state.regs = dict(initial[3])
        locs: list[int] = []
        rows: list[Row | None] = []

        def emit(loc: int, s: _State) -> None:
            row = self._row(s, cie)
            if locs and locs[-1] == loc:
                rows[-1] = row
                return
            if len(locs) >= _MAX_ROWS:
                raise _Bad
            locs.append(loc)
            rows.append(row)

        loc, ok = _run(frames, cie, start, stop, state, initial[3], begin, end, emit)
        if loc < end:
            if not ok:  # rows before the bad instruction stand; from there on, none
                state = _State()
            if locs and locs[-1] == loc:
                rows[-1] = self._row(state, cie)
            else:
                locs.append(loc)
                rows.append(self._row(state, cie))
        return _Fde(begin, end, locs, rows)

    def _row(self, s: _State, cie: _Cie) -> Row | None:
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
    data = sec.data
    if sec.flags & SHF_COMPRESSED:
        data = _decompress(data, elfclass, order)
        if data is None:
            return None
    # datarel in .eh_frame itself is GOT-relative (i386): unknown here, so unread.
    frames = _Frames(data, _Place(sec.addr if eh else 0, None, addr_size, order), eh)
    if hdr is not None:
        index = _hdr_index(hdr, sec.addr, len(data), addr_size, order)
        if index is not None:
            return _Source(frames, *index)
    kind = f"cfi-index{sec.name.replace('.', '-')}-{len(data)}"
    index = _load_index(cache, build_id, kind, len(data))
    if index is None:
        index = _scan_index(frames)
        _save_index(cache, build_id, kind, index)
    return _Source(frames, *index)


def _decompress(data: bytes, elfclass: int, order: str) -> bytes | None:
    """An SHF_COMPRESSED section's contents; None for zstd without the
    zstandard module, or anything damaged."""
    e = "<" if order == "little" else ">"
    try:
        if elfclass == 64:
            ch_type, _, size, _ = struct.unpack_from(e + "IIQQ", data)
            payload = data[24:]
        else:
            ch_type, size, _ = struct.unpack_from(e + "III", data)
            payload = data[12:]
        if size > _DECOMPRESSED_MAX:
            return None
        if ch_type == 1:
            out = zlib.decompressobj().decompress(payload, size)
        elif ch_type == 2:
            try:
                import zstandard  # optional: only some debug files use zstd
            except ImportError:
                return None
            out = zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)
        else:
            return None
        return out if len(out) == size else None
    except Exception:  # noqa: BLE001 - any decoder failure means "absent"
        return None


def _hdr_index(hdr, eh_addr: int, eh_size: int, addr_size: int, order: str):
    """(starts, offsets) from .eh_frame_hdr's sorted table, None if it has
    none or it cannot be read."""
    data = hdr.data
    place = _Place(hdr.addr, hdr.addr, addr_size, order)
    cur = _Cursor(data, 0, len(data), order)
    try:
        if cur.u8() != 1:
            return None
        ptr_enc, count_enc, table_enc = cur.u8(), cur.u8(), cur.u8()
        if ptr_enc != DW_EH_PE_omit:
            _pointer(cur, ptr_enc, place)
        if count_enc == DW_EH_PE_omit or table_enc == DW_EH_PE_omit:
            return None
        count = _pointer(cur, count_enc, place)
        pos = cur.pos
        if table_enc == 0x3B:  # datarel|sdata4: the standard layout, unpacked in bulk
            if count * 8 > len(data) - pos:
                return None
            pairs = array.array("i", data[pos:pos + count * 8])
            if (order == "little") != (array.array("i", [1]).tobytes()[0] == 1):
                pairs.byteswap()
            base = hdr.addr
            starts = array.array("Q", [(v + base) & 0xFFFFFFFFFFFFFFFF for v in pairs[0::2]])
            offsets = array.array("q", [v + base - eh_addr for v in pairs[1::2]])
        else:
            if count > len(data):  # every entry takes at least a byte
                return None
            starts, offsets = array.array("Q"), array.array("q")
            for _ in range(count):
                starts.append(_pointer(cur, table_enc, place))
                offsets.append(_pointer(cur, table_enc, place) - eh_addr)
    except (_Bad, OverflowError):
        return None
    if any(not 0 <= o < eh_size for o in offsets):
        return None
    if any(starts[i] > starts[i + 1] for i in range(len(starts) - 1)):
        pairs = sorted(zip(starts, offsets))
        starts = array.array("Q", [p[0] for p in pairs])
        offsets = array.array("q", [p[1] for p in pairs])
    return starts, offsets


def _scan_index(frames: _Frames) -> tuple[array.array, array.array]:
    """(starts, offsets) of every readable FDE, sorted by start: read once
    when no .eh_frame_hdr table says where they are."""
    found = []
    data, off = frames.data, 0
    while off + 4 <= len(data):
        try:
            head = frames.entry(off)
        except _Bad:
            break  # a length that cannot be trusted: nothing after it can be found
        if head is None:
            # A zero terminator ends .eh_frame for libgcc; readelf reads on,
            # and so do we: whatever follows is parsed as carefully as the rest.
            off += 4
            continue
        if not head[0]:
            try:
                begin, end, *_ = frames.fde(off)
                if end > begin:
                    found.append((begin, off))
            except _Bad:
                pass
        off = head[3]
    found.sort()
    return (array.array("Q", [f[0] for f in found]), array.array("q", [f[1] for f in found]))


# ---------------------------------------------------------------- disk cache

_MAGIC = b"CFIX\x01\x00\x00\x00"
_COUNT = struct.Struct("<QQ")


def _index_path(cache, build_id: bytes | None, kind: str) -> str | None:
    directory = getattr(cache, "directory", None)
    if not directory or not build_id:
        return None
    h = build_id.hex()
    return os.path.join(directory, h[:2], f"{h[2:]}.{kind}")


def _load_index(cache, build_id, kind: str, size: int):
    path = _index_path(cache, build_id, kind)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not ours_alone(st, stat.S_IFREG) or st.st_size > 64 + 16 * size:
                return None  # not ours alone, or larger than any index of this section
            with os.fdopen(os.dup(fd), "rb") as f:
                blob = f.read()
        finally:
            os.close(fd)
        if blob[:8] != _MAGIC:
            return None
        count, section = _COUNT.unpack_from(blob, 8)
        if section != size or len(blob) != 24 + 16 * count:
            return None
        starts = array.array("Q", blob[24:24 + 8 * count])
        offsets = array.array("q", blob[24 + 8 * count:])
        if not _little():
            starts.byteswap()
            offsets.byteswap()
        if any(not 0 <= o < size for o in offsets) or \
                any(starts[i] > starts[i + 1] for i in range(count - 1)):
            return None
        return starts, offsets
    except (OSError, ValueError, struct.error, OverflowError, MemoryError):
        return None


def _save_index(cache, build_id, kind: str, index) -> None:
    path = _index_path(cache, build_id, kind)
    if path is None:
        return
    starts, offsets = array.array("Q", index[0]), array.array("q", index[1])
    if not _little():
        starts.byteswap()
        offsets.byteswap()
    size = int(kind.rsplit("-", 1)[1])
    blob = _MAGIC + _COUNT.pack(len(starts), size) + starts.tobytes() + offsets.tobytes()
    write_private(path, blob)


def _little() -> bool:
    return array.array("H", [1]).tobytes()[0] == 1
