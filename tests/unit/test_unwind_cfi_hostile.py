"""CFI from hostile bytes: corrupted, truncated and lying sections never
raise out of profiler/unwind/cfi.py and finish fast; bad programs read as
no row."""
from __future__ import annotations

import os
import random
import struct
import sys
import time
import zlib
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from cfi_elf import make_elf  # noqa: E402
from conftest import require  # noqa: E402

from profiler.binary.elf import read_sections  # noqa: E402
from profiler.unwind import cfi  # noqa: E402

from test_unwind_cfi import EH_ADDR, LIBC, TEXT, _eh_frame  # noqa: E402


# ---------------------------------------------------------------- hostile input


def _libc_image() -> tuple[bytes, dict]:
    with open(LIBC, "rb") as f:
        image = f.read()
        secs = read_sections(f, (".eh_frame", ".eh_frame_hdr"))
    return image, secs


def _probe(table: cfi.CfiTable | None, lo: int, hi: int, rng: random.Random, n: int) -> int:
    found = 0
    if table is not None:
        for _ in range(n):
            found += table.row_at(rng.randrange(lo, hi)) is not None
    return found


def test_corrupted_sections_never_raise_and_finish_fast():
    require(os.path.exists(LIBC), "needs the x86_64 glibc")
    image, secs = _libc_image()
    eh, hdr = secs[".eh_frame"], secs[".eh_frame_hdr"]
    good = cfi.cfi_from_bytes(image)
    rng = random.Random(20240611)
    lo, hi = 0x26000, 0x1A0000
    assert _probe(good, lo, hi, random.Random(1), 500) > 400
    start = time.perf_counter()
    for trial in range(40):
        buf = bytearray(image)
        target = eh if trial % 4 else hdr
        for _ in range(rng.choice((1, 10, 200))):
            i = target.offset + rng.randrange(len(target.data))
            buf[i] = rng.randrange(256) if trial % 3 else buf[i] ^ (1 << rng.randrange(8))
        table = cfi.cfi_from_bytes(bytes(buf))
        _probe(table, lo, hi, rng, 300)
    # Whole runs of bytes set to patterns that look like lengths and counts.
    for fill in (b"\xff", b"\x00", b"\x7f", b"\x80"):
        buf = bytearray(image)
        for _ in range(5):
            i = eh.offset + rng.randrange(len(eh.data) - 64)
            buf[i:i + 64] = fill * 64
        _probe(cfi.cfi_from_bytes(bytes(buf)), lo, hi, rng, 300)
    assert time.perf_counter() - start < 30


def test_truncated_sections_never_raise():
    require(os.path.exists(LIBC), "needs the x86_64 glibc")
    _, secs = _libc_image()
    eh, hdr = secs[".eh_frame"], secs[".eh_frame_hdr"]
    rng = random.Random(7)
    for cut in (0, 1, 3, 4, 7, 100, 1001, len(eh.data) // 2, len(eh.data) - 1):
        for with_hdr in (True, False):
            sections = [(".eh_frame", eh.addr, eh.data[:cut], 0)]
            if with_hdr:
                sections.append((".eh_frame_hdr", hdr.addr, hdr.data[:max(0, cut // 5)], 0))
            table = cfi.cfi_from_bytes(make_elf([s for s in sections if s[2]]))
            _probe(table, 0x26000, 0x1A0000, rng, 200)


def test_hostile_programs_read_as_no_row(tmp_path):
    # Unknown opcodes, restore_state on an empty stack, runaway remember_state,
    # a CIE pointer to itself, an FDE length past the end, a huge LEB128.
    bad = [b"\x41\x0e\x10\x41\x3f\x41\x0e\x20", b"\x41\x0b", b"\x0a" * 100 + b"\x41\x0e\x10",
           b"\x41\x0e" + b"\xff" * 40]
    fdes = [(TEXT + 0x100 * i, 0x40, prog) for i, prog in enumerate(bad)]
    eh = _eh_frame(fdes)
    table = cfi.cfi_from_bytes(make_elf([(".eh_frame", EH_ADDR, eh, 0)]))
    assert table.row_at(TEXT + 1).cfa_offset == 16  # before the unknown 0x3f
    assert table.row_at(TEXT + 2) is None and table.row_at(TEXT + 0x30) is None
    assert table.row_at(TEXT + 0x100) is not None and table.row_at(TEXT + 0x101) is None
    assert table.row_at(TEXT + 0x300) is not None and table.row_at(TEXT + 0x301) is None
    # An FDE whose CIE pointer points at itself, and a length past the end.
    selfish = struct.pack("<II", 12, 4) + struct.pack("<ii", 0, 0x10) + b"\0\0\0\0"
    table = cfi.cfi_from_bytes(make_elf([(".eh_frame", EH_ADDR, selfish, 0)]))
    assert table is None or table.row_at(EH_ADDR + 8) is None
    long = struct.pack("<I", 0x7FFFFFF0) + b"\0" * 12
    table = cfi.cfi_from_bytes(make_elf([(".eh_frame", EH_ADDR, long, 0)]))
    assert table is None or table.row_at(TEXT) is None


def test_compressed_section_that_lies_about_its_size():
    payload = zlib.compress(b"\0" * 4096)
    for size in (10, 1 << 40):
        chdr = struct.pack("<IIQQ", 1, 0, size, 8)
        image = make_elf([(".debug_frame", 0, chdr + payload, 0x800)])
        table = cfi.cfi_from_bytes(image)
        assert table is None or table.row_at(TEXT) is None
