"""CIE and FDE records of .eh_frame and .debug_frame, read field by field.

Everything here reads bytes a profiled process controls: reading past a
record's end raises Bad, which cfi.py turns into "no row"; every loop is
bounded by the section's size.
"""
from __future__ import annotations

from typing import NamedTuple

from profiler.binary.leb128 import Malformed, sleb, uleb


# Malformed CFI (the binary readers' one class for bad bytes, which LEB128
# numbers raise too): caught in cfi.py, never raised out of it.
Bad = Malformed


# ---------------------------------------------------------------- bytes


class Cursor:
    """Reads fields from data[pos:end], raising Bad past `end`."""

    __slots__ = ("data", "pos", "end", "order")

    def __init__(self, data: bytes, pos: int, end: int, order: str) -> None:
        self.data, self.pos, self.end, self.order = data, pos, end, order

    def uint(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise Bad
        self.pos = p + n
        return int.from_bytes(self.data[p:p + n], self.order)

    def sint(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise Bad
        self.pos = p + n
        return int.from_bytes(self.data[p:p + n], self.order, signed=True)

    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise Bad
        self.pos = p + 1
        return self.data[p]

    def uleb(self) -> int:
        value, self.pos = uleb(self.data, self.pos, self.end)
        return value

    def sleb(self) -> int:
        value, self.pos = sleb(self.data, self.pos, self.end)
        return value

    def block(self) -> bytes:
        n = self.uleb()
        p = self.pos
        if p + n > self.end:
            raise Bad
        self.pos = p + n
        return bytes(self.data[p:p + n])

    def cstring(self) -> bytes:
        i = self.data.find(b"\0", self.pos, self.end)
        if i < 0:
            raise Bad
        s = bytes(self.data[self.pos:i])
        self.pos = i + 1
        return s


class Place(NamedTuple):
    """Where a section's bytes live, to resolve the pointers inside it."""

    addr: int  # sh_addr: pcrel pointers are relative to addr + position
    datarel: int | None  # DW_EH_PE_datarel base (.eh_frame_hdr's address), if known
    addr_size: int
    order: str


DW_EH_PE_omit = 0xFF
# Fixed-size value formats: (bytes, signed), udata2/4/8 and sdata2/4/8.
_FIXED = {0x02: (2, False), 0x03: (4, False), 0x04: (8, False),
          0x0A: (2, True), 0x0B: (4, True), 0x0C: (8, True)}


def pointer(cur: Cursor, enc: int, place: Place, strict: bool = True) -> int:
    """A DW_EH_PE-encoded pointer. `strict=False` only steps over it
    (a personality routine: its value does not matter, its size does)."""
    fmt, app = enc & 0x0F, enc & 0x70
    where = place.addr + cur.pos
    if fmt == 0x00:
        v = cur.uint(place.addr_size)
    elif fmt == 0x01:
        v = cur.uleb()
    elif fmt == 0x09:
        v = cur.sleb()
    elif fmt in _FIXED:
        size, signed = _FIXED[fmt]
        v = cur.sint(size) if signed else cur.uint(size)
    else:
        raise Bad
    if not strict:
        return 0
    if app == 0x10:
        v += where
    elif app == 0x30:
        if place.datarel is None:
            raise Bad
        v += place.datarel
    elif app != 0:
        raise Bad  # textrel/funcrel/aligned: not emitted for FDEs on our targets
    if enc & 0x80:
        raise Bad  # indirect: the value is in process memory, not in the file
    return v & ((1 << (8 * place.addr_size)) - 1)


def read_range(cur: Cursor, enc: int, place: Place) -> int:
    """An FDE's pc_range: the format of the encoding without its application."""
    return pointer(cur, enc & 0x0F, place)


# ---------------------------------------------------------------- CIEs and FDEs


class Cie(NamedTuple):
    code_align: int
    data_align: int
    ra: int
    fde_enc: int  # pointer encoding of FDE addresses (absptr in .debug_frame)
    augmented: bool  # 'z': FDEs carry an augmentation data block
    signal: bool
    init: tuple[int, int]  # initial instructions: data[start:end]
    addr_size: int


class Frames:
    """One .eh_frame or .debug_frame section and what was decoded from it."""

    def __init__(self, data: bytes, place: Place, eh: bool) -> None:
        self.data, self.place, self.eh = data, place, eh
        self.cies: dict[int, Cie | None] = {}
        self.initial: dict[Cie, tuple] = {}  # CIE -> state after its instructions

    def entry(self, off: int) -> tuple[bool, int, int, int, int] | None:
        """(is_cie, CIE offset for an FDE, body start, end, header end) of
        the entry at `off`, None at a terminator."""
        data = self.data
        cur = Cursor(data, off, len(data), self.place.order)
        length = cur.uint(4)
        if length == 0:
            return None
        wide = length == 0xFFFFFFFF
        if wide:
            length = cur.uint(8)
        end = cur.pos + length
        if end > len(data) or length < 4:
            raise Bad
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

    def cie(self, off: int) -> Cie | None:
        if off in self.cies:
            return self.cies[off]
        try:
            cie = self._parse_cie(off)
        except Bad:
            cie = None
        self.cies[off] = cie
        return cie

    def _parse_cie(self, off: int) -> Cie:
        if not 0 <= off < len(self.data):
            raise Bad
        head = self.entry(off)
        if head is None or not head[0]:
            raise Bad
        _, _, body, end, _ = head
        place = self.place
        cur = Cursor(self.data, body, end, place.order)
        version = cur.u8()
        if version not in ((1, 3) if self.eh else (1, 3, 4)):
            raise Bad
        aug = cur.cstring()
        addr_size = place.addr_size
        if version == 4:
            addr_size = cur.u8()
            if addr_size not in (4, 8) or cur.u8() != 0:  # segment_size
                raise Bad
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
                raise Bad
            for c in aug[1:]:
                if c == 0x52:  # R
                    fde_enc = cur.u8()
                elif c == 0x50:  # P
                    pointer(cur, cur.u8(), place, strict=False)
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
            raise Bad  # no 'z': an unknown augmentation's data cannot be skipped
        if fde_enc == DW_EH_PE_omit:
            raise Bad
        return Cie(code_align, data_align, ra, fde_enc, augmented, signal,
                    (cur.pos, end), addr_size)

    def fde(self, off: int) -> tuple[int, int, Cie, int, int]:
        """(pc_begin, pc_end, CIE, instructions start, end) of the FDE at `off`."""
        if not 0 <= off < len(self.data):
            raise Bad
        head = self.entry(off)
        if head is None or head[0]:
            raise Bad
        _, cie_off, body, end, _ = head
        cie = self.cie(cie_off)
        if cie is None:
            raise Bad
        place = self.place
        if cie.addr_size != place.addr_size:
            place = place._replace(addr_size=cie.addr_size)
        cur = Cursor(self.data, body, end, place.order)
        begin = pointer(cur, cie.fde_enc, place)
        size = read_range(cur, cie.fde_enc, place)
        if cie.augmented:
            n = cur.uleb()
            cur.pos += n
            if cur.pos > end:
                raise Bad
        return begin, begin + size, cie, cur.pos, end


# ---------------------------------------------------------------- CFA programs
