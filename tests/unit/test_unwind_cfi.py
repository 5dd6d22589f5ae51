"""cfi.py against binutils: every row readelf --debug-dump=frames-interp
prints for real objects (libc, libpython, fresh C and C++ builds, a
.debug_frame-only build, a build without .eh_frame_hdr) and for hand-made
CFI exercising the rarer encodings and instructions."""
from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import cfi_readelf  # noqa: E402
from cfi_elf import entry, make_elf, sleb, uleb  # noqa: E402
from conftest import require  # noqa: E402

from profiler.binary.cache import SymbolCache  # noqa: E402
from profiler.binary.elf import read_image_file, read_sections  # noqa: E402
from profiler.unwind import cfi  # noqa: E402

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"

CPP = r"""
#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdio>
static int thrower(int n) {
    if (n % 7 == 3) throw std::runtime_error("seven " + std::to_string(n));
    return n * 2;
}
int main(int argc, char **argv) {
    std::vector<std::function<int(int)>> fs;
    for (int i = 0; i < argc + 5; i++)
        fs.push_back([i, &fs](int x) { return x + i + (int)fs.size(); });
    long total = 0;
    for (int i = 0; i < 100; i++) {
        try { total += thrower(i + argc); } catch (const std::exception &e) { total -= e.what()[0]; }
        std::sort(fs.begin(), fs.end(), [](auto &a, auto &b) { return a(1) < b(2); });
        total += fs[i % fs.size()](i);
    }
    std::printf("%ld\n", total);
    return 0;
}
"""

C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) static long work(const char *s, int n) {
    char buf[300];
    long t = 0;
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s-%d", s, i);
        t += strlen(buf) * (i ^ n);
    }
    return t;
}
__attribute__((noinline)) long deep(int depth, long acc) {
    long v[depth + 1];
    for (int i = 0; i <= depth; i++) v[i] = acc + i;
    if (depth == 0) return work("x", (int)acc % 50);
    return deep(depth - 1, v[depth / 2]) + v[0];
}
int main(int argc, char **argv) {
    printf("%ld\n", deep(argc + 3, argc));
    return 0;
}
"""


def _need_binutils() -> None:
    require(shutil.which("readelf") is not None, "needs binutils (readelf)")


def _table(path: str, **kw) -> cfi.CfiTable:
    with open(path, "rb") as f:
        table = cfi.cfi_from_file(f, **kw)
    assert table is not None, path
    return table


def _check(path: str, table: cfi.CfiTable | None = None, section: str = ".eh_frame",
           minimum: int = 10) -> int:
    sections = cfi_readelf.frames(path)
    assert section in sections, f"readelf shows no {section} in {path}: {list(sections)}"
    checked, bad = cfi_readelf.disagreements(table or _table(path), sections[section])
    assert not bad, f"{len(bad)} rows differ from readelf in {path}:\n" + "\n".join(bad)
    assert checked >= minimum
    return checked


def _sections(path: str) -> set[str]:
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout
    return {w for line in out.splitlines() for w in line.replace("]", "] ").split()
            if w.startswith(".")}


def _build(tmp_path: Path, name: str, source: str, cmd: list[str]) -> str:
    compiler = cmd[0]
    require(shutil.which(compiler) is not None, f"needs {compiler}")
    src = tmp_path / name
    src.write_text(source)
    out = tmp_path / (name.rsplit(".", 1)[0])
    subprocess.run(cmd + [str(src), "-o", str(out)], check=True, capture_output=True)
    return str(out)


# ---------------------------------------------------------------- real objects


def test_libc_rows_match_readelf():
    _need_binutils()
    require(os.path.exists(LIBC), "needs the x86_64 glibc")
    assert _check(LIBC, minimum=10_000)


def test_libpython_rows_match_readelf():
    _need_binutils()
    python = shutil.which("python3")
    require(python is not None, "needs python3 on PATH")
    out = subprocess.run([python, "-c", "import sysconfig;print(sysconfig.get_config_var('LDLIBRARY'),"
                          "sysconfig.get_config_var('LIBDIR'))"], capture_output=True, text=True)
    name, libdir = (out.stdout.split() + ["", ""])[:2]
    path = os.path.join(libdir, name)
    require(name.endswith(".so") and os.path.exists(path), f"needs a shared libpython, not {name!r}")
    assert _check(path, minimum=10_000)


def test_cpp_exceptions_and_lambdas_match_readelf(tmp_path):
    _need_binutils()
    exe = _build(tmp_path, "prog.cpp", CPP, ["g++", "-O2", "-std=c++17"])
    _check(exe)


def test_c_omit_frame_pointer_matches_readelf(tmp_path):
    _need_binutils()
    exe = _build(tmp_path, "prog.c", C, ["gcc", "-O2", "-fomit-frame-pointer"])
    _check(exe)


def test_debug_frame_matches_readelf(tmp_path):
    _need_binutils()
    exe = _build(tmp_path, "prog.c", C, ["gcc", "-O2", "-g", "-fno-asynchronous-unwind-tables",
                                         "-fno-unwind-tables"])
    assert ".debug_frame" in _sections(exe)
    checked = _check(exe, section=".debug_frame", minimum=3)
    # Our own functions are only in .debug_frame: the table found them there.
    with open(exe, "rb") as f:
        eh = read_sections(f, (".eh_frame",)).get(".eh_frame")
    assert checked >= 3 and (eh is None or len(eh.data) < 1024)


def test_compressed_debug_frame_matches_readelf(tmp_path):
    _need_binutils()
    require(shutil.which("objcopy") is not None, "needs objcopy")
    exe = _build(tmp_path, "prog.c", C, ["gcc", "-O2", "-g", "-fno-asynchronous-unwind-tables",
                                         "-fno-unwind-tables"])
    packed = str(tmp_path / "packed")
    subprocess.run(["objcopy", "--compress-debug-sections=zlib", exe, packed], check=True)
    with open(packed, "rb") as f:
        sec = read_sections(f, (".debug_frame",))[".debug_frame"]
    assert sec.flags & 0x800  # SHF_COMPRESSED: the case under test
    _check(packed, section=".debug_frame", minimum=3)


def test_no_eh_frame_hdr_matches_readelf_and_uses_the_disk_cache(tmp_path):
    _need_binutils()
    exe = _build(tmp_path, "prog.cpp", CPP, ["g++", "-O2", "-Wl,--no-eh-frame-hdr"])
    assert ".eh_frame_hdr" not in _sections(exe) and ".eh_frame" in _sections(exe)
    build_id = read_image_file(exe, tables=False).build_id
    assert build_id
    cache = SymbolCache(str(tmp_path / "cache"))
    _check(exe, _table(exe, cache=cache, build_id=build_id))
    saved = list((tmp_path / "cache").rglob("*cfi-index*"))
    assert len(saved) == 1
    assert stat.S_IMODE(saved[0].parent.stat().st_mode) == 0o700
    # The next run reads the index back: proven by a doctored index whose
    # single FDE is all the table can then find.
    blob = saved[0].read_bytes()
    count = struct.unpack_from("<Q", blob, 8)[0]
    starts = struct.unpack_from(f"<{count}Q", blob, 24)
    offsets = struct.unpack_from(f"<{count}q", blob, 24 + 8 * count)
    one = blob[:8] + struct.pack("<QQ", 1, struct.unpack_from("<Q", blob, 16)[0]) + \
        struct.pack("<Qq", starts[-1], offsets[-1])
    saved[0].write_bytes(one)
    table = _table(exe, cache=cache, build_id=build_id)
    assert table.row_at(starts[-1]) is not None and table.row_at(starts[0]) is None
    # ... but not if others could have written it.
    os.chmod(saved[0], 0o666)
    _check(exe, _table(exe, cache=cache, build_id=build_id))
    # Garbage in the cache is ignored too.
    os.chmod(saved[0], 0o600)
    saved[0].write_bytes(b"CFIX\x01\0\0\0" + b"\xff" * 40)
    _check(exe, _table(exe, cache=cache, build_id=build_id))


def test_combined_tries_first_then_second():
    # An object's .eh_frame covers [TEXT, TEXT+0x40); its debug file's
    # .debug_frame covers that range too and another function.
    eh = _eh_frame([(TEXT, 0x40, b"\x41\x0e\x10")])
    a = cfi.cfi_from_bytes(make_elf([(".eh_frame", EH_ADDR, eh, 0)]))
    b = cfi.cfi_from_bytes(make_elf([(".debug_frame", 0, _debug_frame(3, False), 0)]))
    assert cfi.combined(a, None) is a and cfi.combined(None, b) is b
    assert cfi.combined(None, None) is None
    both = cfi.combined(a, b)
    assert both.row_at(TEXT + 1) == a.row_at(TEXT + 1) != b.row_at(TEXT + 1)
    assert a.row_at(TEXT + 0x101) is None
    assert both.row_at(TEXT + 0x101) == b.row_at(TEXT + 0x101) is not None
    assert both.row_at(TEXT + 0x200) is None


def test_not_elf_and_no_cfi():
    assert cfi.cfi_from_bytes(b"") is None
    assert cfi.cfi_from_bytes(b"\x7fELF" + b"\0" * 100) is None
    assert cfi.cfi_from_file(io.BytesIO(b"not an ELF at all" * 10)) is None
    assert cfi.cfi_from_bytes(make_elf([(".text", 0x1000, b"\xc3" * 16, 0)])) is None


# ---------------------------------------------------------------- hand-made CFI

EH_ADDR, HDR_ADDR, TEXT = 0x2000, 0x1F00, 0x1000

# CIE: version 1, "zRS"-style augmentations, code align 1, data align -8, RA 16.
def _cie(aug: bytes, aug_data: bytes, insns: bytes, version: int = 1, cie_id: bytes = b"\0\0\0\0",
         extra: bytes = b"") -> bytes:
    ra = bytes([16]) if version == 1 else uleb(16)
    z = uleb(len(aug_data)) + aug_data if aug.startswith(b"z") else b""
    return cie_id + bytes([version]) + aug + b"\0" + extra + uleb(1) + sleb(-8) + ra + z + insns


DEF_CFA_RSP8 = b"\x0c\x07\x08" + b"\x90\x01"  # def_cfa rsp+8; offset r16 at cfa-8

# One FDE body using most instructions; readelf prints its rows.
RICH = (
    b"\x41" b"\x0e\x10" b"\x86\x02"            # adv 1; def_cfa_offset 16; offset rbp c-16
    b"\x0a"                                      # remember_state
    b"\x02\x03" b"\x0d\x06"                      # advance_loc1 3; def_cfa_register rbp
    b"\x03\x04\x00" b"\x11\x03" + sleb(-3) +     # advance_loc2 4; offset_extended_sf rbx c-24
    b"\x04\x02\x00\x00\x00" b"\x07\x03"          # advance_loc4 2; undefined rbx
    b"\x42" b"\x08\x0c" b"\x09\x0d\x05"          # adv 2; same_value r12; register r13 in rdi
    b"\x42" b"\x14\x0e\x02" b"\x15\x0f" + sleb(-4) +  # val_offset r14 v-16; val_offset_sf r15 v+32
    b"\x42" b"\x10\x03\x02\x77\x10"              # expression rbx: breg7 16
    b"\x16\x0c\x02\x77\x08"                      # val_expression r12: breg7 8
    b"\x2e\x10"                                  # GNU_args_size 16
    b"\x42" b"\x0b"                              # restore_state
    b"\x42" b"\x12\x07" + sleb(-4) +             # def_cfa_sf rsp+32
    b"\xc6"                                      # restore rbp
    b"\x42" b"\x2f\x06\x03"                      # GNU_negative_offset_extended rbp c+24
    b"\x05\x0a\x05"                              # offset_extended r10 c-40
    b"\x06\x0a"                                  # restore_extended r10
    b"\x42" b"\x13" + sleb(-2) +                 # def_cfa_offset_sf 16
    b"\x42" b"\x0f\x03\x77\x08\x06"              # def_cfa_expression breg7 8; deref
    b"\x00"                                      # nop
)


def _eh_frame(fdes: list[tuple[int, int, bytes]], enc: int = 0x1B, aug: bytes = b"zR",
              cie_insns: bytes = DEF_CFA_RSP8, wide: bool = False) -> bytes:
    """An .eh_frame at EH_ADDR: one CIE, then FDEs (start, size, program)
    with their addresses in encoding `enc`."""
    aug_data = bytes([enc]) if b"R" in aug else b""
    if b"P" in aug:
        aug_data = b"\x00" + struct.pack("<Q", 0x1234) + aug_data  # absptr personality
    data = entry(_cie(aug, aug_data, cie_insns, cie_id=b"\0" * (8 if wide else 4)), wide)
    for start, size, prog in fdes:
        id_pos = len(data) + (12 if wide else 4)
        head = struct.pack("<Q" if wide else "<I", id_pos)  # back to the CIE at 0
        addr_pos = EH_ADDR + id_pos + len(head)
        fmt = enc & 0x0F
        value = start - addr_pos if enc & 0x70 == 0x10 else start
        packer = {0x00: "<Q", 0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i",
                  0x0C: "<q"}
        if fmt in (0x01, 0x09):
            pc = (uleb if fmt == 0x01 else sleb)(value) + (uleb if fmt == 0x01 else sleb)(size)
        else:
            pc = struct.pack(packer[fmt], value) + struct.pack(packer[fmt], size)
        z = b"\0" if aug.startswith(b"z") else b""
        data += entry(head + pc + z + prog, wide)
    return data + b"\0\0\0\0"


def _hdr(eh: bytes, fdes: list[tuple[int, int]], table_enc: int = 0x3B, order=sorted) -> bytes:
    """.eh_frame_hdr at HDR_ADDR: (start, .eh_frame offset) pairs, sorted;
    the table datarel|sdata4 (the standard) or absolute udata8."""
    out = bytes([1, 0x1B, 0x03, table_enc]) + struct.pack("<i", EH_ADDR - (HDR_ADDR + 4)) + \
        struct.pack("<I", len(fdes))
    for start, off in order(fdes):
        if table_enc == 0x3B:
            out += struct.pack("<ii", start - HDR_ADDR, EH_ADDR + off - HDR_ADDR)
        else:
            out += struct.pack("<QQ", start, EH_ADDR + off)
    return out


def _fde_offsets(eh: bytes) -> list[int]:
    offs, pos = [], 0
    while pos + 4 <= len(eh):
        n = struct.unpack_from("<I", eh, pos)[0]
        if n == 0:
            break
        wide = n == 0xFFFFFFFF
        if wide:
            n = struct.unpack_from("<Q", eh, pos + 4)[0]
        idp = pos + (12 if wide else 4)
        if struct.unpack_from("<Q" if wide else "<I", eh, idp)[0]:
            offs.append(pos)
        pos = idp + n
    return offs


def _image(tmp_path: Path, eh: bytes, with_hdr: bool, starts: list[int], extra=()) -> str:
    sections = [(".eh_frame", EH_ADDR, eh, 0)]
    if with_hdr:
        sections.insert(0, (".eh_frame_hdr", HDR_ADDR, _hdr(eh, list(zip(starts, _fde_offsets(eh)))), 0))
    sections += list(extra)
    path = tmp_path / "cfi.elf"
    path.write_bytes(make_elf(sections))
    return str(path)


@pytest.mark.parametrize("with_hdr", [True, False])
def test_every_instruction_matches_readelf(tmp_path, with_hdr):
    _need_binutils()
    eh = _eh_frame([(TEXT, 0x40, RICH), (TEXT + 0x40, 0x10, b"\x44\x0e\x10")])
    path = _image(tmp_path, eh, with_hdr, [TEXT, TEXT + 0x40])
    checked = _check(path, minimum=20)
    table = _table(path)
    # readelf prints "exp" and register names; the details are ours to check.
    assert dict(table.row_at(TEXT + 12).regs)[3] == cfi.Rule(cfi.UNDEFINED)
    rules = dict(table.row_at(TEXT + 16).regs)
    assert rules[3] == cfi.Rule(cfi.EXPRESSION, 0, b"\x77\x10")
    assert rules[12] == cfi.Rule(cfi.VAL_EXPRESSION, 0, b"\x77\x08")
    assert rules[13] == cfi.Rule(cfi.REGISTER, 5)
    assert rules[14] == cfi.Rule(cfi.VAL_OFFSET, -16) and rules[15] == cfi.Rule(cfi.VAL_OFFSET, 32)
    last = table.row_at(TEXT + 0x3F)
    assert last.cfa_reg == -1 and last.cfa_expr == b"\x77\x08\x06"
    assert table.row_at(TEXT - 1) is None and table.row_at(TEXT + 0x50) is None
    assert checked


@pytest.mark.parametrize("table_enc", [0x3B, 0x04])
def test_eh_frame_hdr_table_is_what_finds_fdes(table_enc):
    fdes = [(TEXT + 0x40 * i, 0x20, b"\x41\x0e\x10") for i in range(4)]
    eh = _eh_frame(fdes)
    pairs = list(zip([f[0] for f in fdes], _fde_offsets(eh)))
    # The table lists all but the third FDE, out of order: only the table is
    # searched (sorted first), so the third reads as no row.
    listed = pairs[:2] + pairs[3:]
    hdr = _hdr(eh, listed, table_enc, order=lambda p: list(reversed(p)))
    table = cfi.cfi_from_bytes(make_elf([(".eh_frame_hdr", HDR_ADDR, hdr, 0),
                                         (".eh_frame", EH_ADDR, eh, 0)]))
    for i, (start, _, _) in enumerate(fdes):
        row = table.row_at(start + 1)
        assert (row is None) if i == 2 else (row.cfa_offset == 16)
    # A table entry pointing outside .eh_frame: the table is not trusted, and
    # every FDE is found by reading them all.
    bad = _hdr(eh, listed[:-1] + [(listed[-1][0], len(eh) + 64)], table_enc)
    table = cfi.cfi_from_bytes(make_elf([(".eh_frame_hdr", HDR_ADDR, bad, 0),
                                         (".eh_frame", EH_ADDR, eh, 0)]))
    assert all(table.row_at(start + 1).cfa_offset == 16 for start, _, _ in fdes)


@pytest.mark.parametrize("enc", [0x1B, 0x00, 0x03, 0x04, 0x0C, 0x1C, 0x0B, 0x1A, 0x02])
def test_pointer_encodings_match_readelf(tmp_path, enc):
    _need_binutils()
    fdes = [(TEXT + 0x10 * i, 0x10, b"\x41\x0e\x10\x43\x0e\x20") for i in range(3)]
    eh = _eh_frame(fdes, enc=enc)
    _check(_image(tmp_path, eh, False, []), minimum=6)


@pytest.mark.parametrize("enc", [0x01, 0x09, 0x19])
def test_leb128_pointer_encodings(enc):
    # readelf cannot print LEB128-encoded FDE addresses; the FDEs built
    # here say where they start, and row_at must find them there.
    fdes = [(TEXT + 0x10 * i, 0x10, b"\x41\x0e\x10\x43\x0e\x20") for i in range(3)]
    table = cfi.cfi_from_bytes(make_elf([(".eh_frame", EH_ADDR, _eh_frame(fdes, enc=enc), 0)]))
    for start, _, _ in fdes:
        assert [table.row_at(start + d).cfa_offset for d in (0, 1, 3, 4, 15)] == [8, 16, 16, 32, 32]
        assert table.row_at(start + 16 + 0x1000) is None


def test_signal_and_personality_match_readelf(tmp_path):
    _need_binutils()
    eh = _eh_frame([(TEXT, 0x20, b"\x41\x0e\x10")], aug=b"zPRS")
    path = _image(tmp_path, eh, True, [TEXT])
    _check(path, minimum=2)
    row = _table(path).row_at(TEXT + 1)
    assert row.signal_frame and row.cfa_offset == 16 and row.ra_column == 16
    plain = _eh_frame([(TEXT, 0x20, b"\x41\x0e\x10")], aug=b"zRB")  # arm64's BTI mark
    assert not _table(_image(tmp_path, plain, True, [TEXT])).row_at(TEXT).signal_frame


def test_wide_eh_frame_entries():
    # 64-bit lengths in .eh_frame: no assembler emits them, and readelf
    # finds the CIE 4 bytes off (it subtracts from the end of a 4-byte id),
    # so the FDEs built here are the oracle: the CIE pointer is 8 bytes
    # wide, counted back from where it starts, as gdb reads it.
    fdes = [(TEXT + 0x40 * i, 0x20, b"\x41\x0e\x10") for i in range(3)]
    eh = _eh_frame(fdes, aug=b"zPRS", wide=True)
    for with_hdr in (True, False):
        sections = [(".eh_frame", EH_ADDR, eh, 0)]
        if with_hdr:
            pairs = list(zip([f[0] for f in fdes], _fde_offsets(eh)))
            sections.append((".eh_frame_hdr", HDR_ADDR, _hdr(eh, pairs), 0))
        table = cfi.cfi_from_bytes(make_elf(sections))
        for start, _, _ in fdes:
            assert table.row_at(start).cfa_offset == 8
            row = table.row_at(start + 1)
            assert row.signal_frame and row.cfa_offset == 16 and row.ra_column == 16
            assert table.row_at(start + 0x20) is None


def _debug_frame(version: int, wide: bool) -> bytes:
    cie_id = b"\xff" * (8 if wide else 4)
    extra = b"\x08\x00" if version == 4 else b""
    data = entry(_cie(b"", b"", DEF_CFA_RSP8, version, cie_id, extra), wide)
    for i, prog in enumerate([RICH, b"\x41\x0e\x10\x86\x02\x44\x0d\x06"]):
        ptr = struct.pack("<Q" if wide else "<I", 0)
        data += entry(ptr + struct.pack("<QQ", TEXT + 0x100 * i, 0x40) + prog, wide)
    return data


@pytest.mark.parametrize("version,wide", [(1, False), (3, False), (4, False), (3, True)])
def test_debug_frame_versions_match_readelf(tmp_path, version, wide):
    _need_binutils()
    data = _debug_frame(version, wide)
    path = tmp_path / "dbg.elf"
    path.write_bytes(make_elf([(".debug_frame", 0, data, 0)]))
    _check(str(path), section=".debug_frame", minimum=10)


def test_zero_terminator_and_set_loc(tmp_path):
    _need_binutils()
    # DW_CFA_set_loc (pcrel|sdata4 like the FDE's addresses), then entries
    # after a zero terminator, which readelf reads on past, as we do.
    prog = b"\x41\x0e\x10"
    # The set_loc operand is relative to its own address.
    body_start = len(entry(_cie(b"zR", b"\x1b", DEF_CFA_RSP8)))
    set_loc_pos = EH_ADDR + body_start + 4 + 4 + 8 + 1 + len(prog) + 1
    prog2 = prog + b"\x01" + struct.pack("<i", TEXT + 0x20 - set_loc_pos) + b"\x0e\x30"
    eh = _eh_frame([(TEXT, 0x30, prog2)])
    eh += _eh_frame([(TEXT + 0x100, 0x30, prog)])  # after the terminator
    path = _image(tmp_path, eh, False, [])
    _check(path, minimum=5)
    assert _table(path).row_at(TEXT + 0x20).cfa_offset == 0x30
