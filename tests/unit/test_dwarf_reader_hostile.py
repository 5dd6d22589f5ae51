"""Our DWARF reader (symbolize/dwarf_*.py) on damaged and hostile files:
every lookup ends, quickly, in answers or one LinesError; never another
exception, a hang or an allocation a header asked for."""
from __future__ import annotations

import random
import struct
import time
import types
from pathlib import Path

import pytest

from lines_programs import build_c, instruction_starts, need
from profiler.binary import elf
from profiler.symbolize import lines
from profiler.symbolize.dwarf_chains import SourceFrame

DWARF = (".debug_info", ".debug_abbrev", ".debug_line", ".debug_str", ".debug_line_str",
         ".debug_rnglists", ".debug_ranges", ".debug_aranges")


def _where(path: Path):
    return types.SimpleNamespace(path=str(path), build_id=None, debuglink=None,
                                 origin=str(path), root="/", debug_dirs=())


def _lookup(path: Path, addresses: list[int]):
    """(answers, None) or (None, the LinesError), read in this process. A
    failed object fails again when asked again: no answer comes later
    from a reader that saw its DWARF half."""
    source = lines.ObjectLines(_where(path), None, None)
    try:
        return source.lookup(addresses), None
    except lines.LinesError as err:
        with pytest.raises(lines.LinesError):
            source.lookup(addresses)
        return None, err


def _sections(path: Path) -> dict[str, tuple[int, int]]:
    with open(path, "rb") as f:
        _header, sections = elf.section_headers(f)
    return {s.name: (s.offset, s.size) for s in sections if s.name in DWARF}


@pytest.fixture(scope="module", params=[["-gdwarf-4"], ["-gdwarf-5"],
                                        ["-gdwarf-5", "-gz=zlib"]],
                ids=["dwarf4", "dwarf5", "dwarf5-zlib"])
def program(request, tmp_path_factory):
    need("gcc", "objdump")
    d = tmp_path_factory.mktemp("hostile-dwarf")
    exe = build_c(d, "prog", request.param)
    addresses = instruction_starts(exe, lambda n: n in ("work", "headers", "main"))
    answers, err = _lookup(exe, addresses)
    assert err is None and sum(len(c) > 1 for c in answers.values()) > 10
    return d, exe, addresses


def test_bit_flips_end_in_answers_or_one_error(program):
    d, exe, addresses = program
    data = exe.read_bytes()
    where = _sections(exe)
    rng = random.Random(11)
    names = sorted(where)
    outcomes = {"answers": 0, "error": 0}
    slowest = 0.0
    for i in range(240):
        damaged = bytearray(data)
        offset, size = where[names[i % len(names)]]
        for _ in range(rng.randint(1, 4)):
            at = offset + rng.randrange(size)
            damaged[at] = rng.randrange(256) if rng.random() < 0.5 else damaged[at] ^ 0xFF
        path = d / f"flip{i}"
        path.write_bytes(bytes(damaged))
        start = time.perf_counter()
        answers, err = _lookup(path, addresses)
        slowest = max(slowest, time.perf_counter() - start)
        if err is None:
            outcomes["answers"] += 1
            assert set(answers) <= set(addresses)
            assert all(isinstance(level, SourceFrame) for c in answers.values() for level in c)
        else:
            outcomes["error"] += 1
        path.unlink()
    print(f"\nbit flips: {outcomes}, slowest lookup {slowest * 1000:.1f} ms")
    assert slowest < 2.0


def _patched(exe: Path, section: str, at: int, raw: bytes) -> Path:
    offset, size = _sections(exe)[section]
    assert at + len(raw) <= size
    data = bytearray(exe.read_bytes())
    data[offset + at:offset + at + len(raw)] = raw
    out = exe.with_name(exe.name + f"-{section[1:]}-{at}")
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A DWARF 5 program whose sections are stored as they are read."""
    need("gcc", "objdump")
    exe = build_c(tmp_path_factory.mktemp("plain-dwarf"), "plain", ["-gdwarf-5"])
    return exe, instruction_starts(exe, lambda n: n == "work")


def test_a_unit_longer_than_its_section_is_one_error(plain):
    exe, addresses = plain
    answers, err = _lookup(_patched(exe, ".debug_info", 0, struct.pack("<I", 0xFFFFFF00)),
                           addresses)
    assert answers is None and "malformed DWARF" in str(err)


def test_an_endless_abbreviation_table_is_one_error(plain):
    exe, addresses = plain
    _offset, size = _sections(exe)[".debug_abbrev"]
    # no terminating (0, 0) pair or 0 code anywhere: every byte 0x7f
    answers, err = _lookup(_patched(exe, ".debug_abbrev", 0, b"\x7f" * size), addresses)
    assert answers is None and "malformed DWARF" in str(err)


def test_an_endless_file_table_is_one_error(plain):
    exe, addresses = plain
    offset, size = _sections(exe)[".debug_line"]
    data = exe.read_bytes()[offset:offset + size]
    # DWARF 5 header: unit_length 4, version 2, address and selector sizes
    # 2, header_length 4, then min_inst, max_ops, default_is_stmt,
    # line_base, line_range, opcode_base and opcode_base - 1 lengths
    at = 4 + 2 + 2 + 4 + 6 + data[4 + 2 + 2 + 4 + 5] - 1
    # directory formats: none, and 2^62 directories of no bytes each
    raw = b"\x00" + bytes([0x80] * 8) + b"\x40"
    answers, err = _lookup(_patched(exe, ".debug_line", at, raw), addresses)
    assert answers is None and "directory or file entries" in str(err)


def test_a_compressed_section_claiming_gigabytes_is_one_error(tmp_path):
    need("gcc")
    exe = build_c(tmp_path, "zprog", ["-gdwarf-5", "-gz=zlib"])
    offset, _size = _sections(exe)[".debug_info"]
    data = bytearray(exe.read_bytes())
    # Elf64_Chdr: ch_type, ch_reserved, ch_size (the uncompressed size), ch_addralign
    struct.pack_into("<Q", data, offset + 8, 1 << 40)
    path = tmp_path / "claims"
    path.write_bytes(bytes(data))
    start = time.perf_counter()
    answers, err = _lookup(path, [0x1139])
    assert time.perf_counter() - start < 2.0
    assert answers is None and "malformed DWARF" in str(err)
