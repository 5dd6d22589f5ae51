"""Our DWARF reader on hand-made DWARF 5: the forms and corner cases
compilers rarely write (so the programs built in test_symbolize_lines.py
do not reach them), each answered as LLVM answers it, or refused with
DwarfError; never another exception or a wrong line."""
from __future__ import annotations

import struct
import subprocess
import time

import pytest

from profiler.symbolize.dwarf_chains import DwarfChains, SourceFrame
from profiler.binary.leb128 import uleb
from profiler.symbolize.dwarf_units import DwarfError

# tags, attributes and forms, as DWARF 5 numbers them
CU, SUB, INL = 0x11, 0x2E, 0x1D
NAME, STMT, LOW, HIGH, COMP_DIR, ORIGIN, DECL_LINE, SPEC = 0x03, 0x10, 0x11, 0x12, 0x1B, \
    0x31, 0x3B, 0x47
RANGES, CALL_COLUMN, CALL_FILE, CALL_LINE, RNGLISTS_BASE = 0x55, 0x57, 0x58, 0x59, 0x74
ADDR, DATA1, DATA2, DATA4, STRING, UDATA, REF4, INDIRECT, SEC_OFFSET = 0x01, 0x0B, 0x05, 0x06, \
    0x08, 0x0F, 0x13, 0x16, 0x17
RNGLISTX, DATA16 = 0x23, 0x1E


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def abbrevs(*entries) -> bytes:
    """entries: (code, tag, has_children, [(attribute, form), ...])."""
    out = bytearray()
    for code, tag, children, specs in entries:
        out += leb(code) + leb(tag) + bytes([children])
        for attr, form in specs:
            out += leb(attr) + leb(form)
        out += b"\0\0"
    return bytes(out + b"\0")


def unit(body: bytes) -> bytes:
    """A DWARF 5 compile unit header (32-bit, 8-byte addresses, abbrevs at 0)."""
    rest = struct.pack("<HBBI", 5, 1, 8, 0) + body
    return struct.pack("<I", len(rest)) + rest


def line_program(sequences: list[tuple[list[tuple[int, int]], int]],
                 files=(("a.c", 0), ("a.c", 0)),
                 file_formats: bytes | None = None, file_entries: bytes | None = None) -> bytes:
    """A DWARF 5 line program: directory "/src", the files given (rows
    name file 1, the register's first value; GCC lists the unit's file as 0 and 1), and
    sequences of rows (address, line), each ending at its end address."""
    std = bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1])  # opcode_base 13's lengths
    dirs = b"\x01" + leb(1) + leb(STRING) + leb(1) + b"/src\0"
    if file_formats is None:
        file_formats = b"\x02" + leb(1) + leb(STRING) + leb(2) + leb(UDATA)
        file_entries = leb(len(files)) + b"".join(n.encode() + b"\0" + leb(d) for n, d in files)
    header = bytes([1, 1, 1, 0xFB, 14, 13]) + std + dirs + file_formats + file_entries
    program = bytearray()
    for rows, end in sequences:
        line = 1
        for i, (address, row_line) in enumerate(rows):
            if i == 0:
                program += b"\0" + leb(9) + b"\x02" + struct.pack("<Q", address)
            else:
                program += b"\x02" + leb(address - rows[i - 1][0])
            program += b"\x03" + leb_signed(row_line - line) + b"\x01"
            line = row_line
        program += b"\x02" + leb(end - rows[-1][0]) + b"\0\x01\x01"
    body = struct.pack("<HBB", 5, 8, 0) + struct.pack("<I", len(header)) + header + program
    return struct.pack("<I", len(body)) + body


def leb_signed(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def chains(sections: dict[str, bytes], *addresses: int):
    return DwarfChains(sections).chains(addresses)


def plain_program(stmt_form: int = SEC_OFFSET, stmt_value: bytes = struct.pack("<I", 0),
                  decl_lines=(7, 9), extra: dict | None = None) -> dict[str, bytes]:
    """One unit: main [0x1000, 0x1040) with a call inlined at [0x1010,
    0x1020) (from line 12 of a.c) whose origin names it `leaf` and is
    declared on decl_lines[0], its specification on decl_lines[1]."""
    table = abbrevs(
        (1, CU, 1, [(NAME, STRING), (COMP_DIR, STRING), (STMT, stmt_form), (LOW, ADDR),
                    (HIGH, DATA4)]),
        (2, SUB, 1, [(NAME, STRING), (LOW, ADDR), (HIGH, DATA4)]),
        (3, INL, 0, [(ORIGIN, REF4), (LOW, ADDR), (HIGH, DATA4), (CALL_FILE, DATA1),
                     (CALL_LINE, DATA1), (CALL_COLUMN, DATA1)]),
        (4, SUB, 0, [(NAME, STRING), (DECL_LINE, DATA1), (SPEC, REF4)]),
        (5, SUB, 0, [(DECL_LINE, DATA1)]))
    cu = b"\x01a.c\0/src\0" + stmt_value + struct.pack("<QI", 0x1000, 0x40)
    main = b"\x02main\0" + struct.pack("<QI", 0x1000, 0x40)
    head = 12  # the unit header's size
    leaf_at = head + len(cu) + len(main) + 1 + 4 + 8 + 4 + 3 + 1  # after the inlined entry
    inlined = b"\x03" + struct.pack("<IQI", leaf_at, 0x1010, 0x10) + bytes([0, 12, 5]) + b"\0"
    decl_at = leaf_at + 1 + 5 + 1 + 4
    leaf = b"\x04leaf\0" + bytes([decl_lines[0]]) + struct.pack("<I", decl_at)
    decl = b"\x05" + bytes([decl_lines[1]])
    info = unit(cu + main + inlined + leaf + decl + b"\0")
    assert info[decl_at] == 5
    assert info[leaf_at] == 4
    out = {".debug_abbrev": table, ".debug_info": info,
           ".debug_line": line_program([([(0x1000, 10), (0x1010, 3), (0x1020, 13)], 0x1040)])}
    out.update(extra or {})
    return out


def test_the_hand_made_program_reads_as_llvm_reads_it():
    got = chains(plain_program(), 0x1004, 0x1014, 0x1030, 0x1040)
    assert got[0x1004] == (SourceFrame("main", "/src/a.c", 10),)
    assert got[0x1014] == (SourceFrame("leaf", "/src/a.c", 3, 0, 7),
                           SourceFrame("main", "/src/a.c", 12, 5))
    assert got[0x1030] == (SourceFrame("main", "/src/a.c", 13),)
    assert got[0x1040] == ()  # the sequence ends there


def test_a_line_table_offset_in_a_string_form_gives_no_lines():
    got = chains(plain_program(STRING, b"x\0"), 0x1014)
    assert got[0x1014] == ()


def test_an_indirect_form_is_read_as_the_form_it_names():
    sections = plain_program(INDIRECT, leb(SEC_OFFSET) + struct.pack("<I", 0))
    assert chains(sections, 0x1014)[0x1014][0] == SourceFrame("leaf", "/src/a.c", 3, 0, 7)


def test_the_first_decl_line_found_counts_even_when_zero():
    # LLVM's findRecursively stops at the first entry holding the
    # attribute, whatever its value
    assert chains(plain_program(decl_lines=(0, 9)), 0x1014)[0x1014][0].start_line == 0
    assert chains(plain_program(decl_lines=(7, 9)), 0x1014)[0x1014][0].start_line == 7


def test_a_run_of_continuation_bytes_is_refused_at_once():
    sections = plain_program()
    sections[".debug_abbrev"] = b"\xff" * (4 << 20)
    start = time.perf_counter()
    with pytest.raises(DwarfError, match="LEB128"):
        chains(sections, 0x1014)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(DwarfError):
        uleb(b"\xff" * 11 + b"\x01", 0)


def test_a_file_table_of_wide_entries_past_its_header_is_refused_at_once():
    formats = b"\xff" + (leb(3) + leb(DATA16)) * 255  # 255 timestamps of 16 bytes each
    sections = plain_program()
    sections[".debug_line"] = line_program([([(0x1000, 10)], 0x1040)], file_formats=formats,
                                           file_entries=leb(4000) + b"\0" * 64)
    start = time.perf_counter()
    with pytest.raises(DwarfError, match="past the line program's header|entries in"):
        chains(sections, 0x1004)
    assert time.perf_counter() - start < 1.0


def test_a_range_list_index_past_its_table_is_refused():
    table = abbrevs((1, CU, 1, [(NAME, STRING), (STMT, SEC_OFFSET), (RNGLISTS_BASE, SEC_OFFSET),
                                (RANGES, RNGLISTX)]))
    info = unit(b"\x01a.c\0" + struct.pack("<II", 0, 12) + leb(50) + b"\0")
    rnglists = struct.pack("<IHBBI", 8, 5, 8, 0, 0)  # a header, then no offsets
    sections = {".debug_abbrev": table, ".debug_info": info, ".debug_rnglists": rnglists,
                ".debug_line": line_program([([(0x1000, 10)], 0x1040)])}
    with pytest.raises(DwarfError, match="range list index"):
        chains(sections, 0x1004)


def test_overlapping_unit_spans_go_to_the_lowest_unit_as_llvm_builds_them():
    from profiler.symbolize.dwarf_chains import _disjoint
    # unit 40 covers [0x100, 0x300); unit 10 covers [0x200, 0x280) inside it:
    # LLVM keeps extending 40's span while 40 still covers the address
    assert _disjoint([(0x100, 0x300, 40), (0x200, 0x280, 10)]) == [(0x100, 0x300, 40)]
    # where two start together, the lowest offset has it
    assert _disjoint([(0x100, 0x200, 40), (0x100, 0x180, 10)]) == \
        [(0x100, 0x180, 10), (0x180, 0x200, 40)]


def test_identical_sequences_answer_from_the_first():
    # two sequences over the same bytes (folded code): LLVM sorts by end
    # address and takes the first that ends above the address
    sections = plain_program()
    sections[".debug_line"] = line_program([([(0x1000, 10)], 0x1040), ([(0x1000, 20)], 0x1040)])
    assert chains(sections, 0x1004)[0x1004][-1].line == 10


def test_a_sequence_inside_another_answers_only_inside_itself():
    # [0x1000, 0x1040) holds [0x1010, 0x1020): LLVM looks only in the first
    # sequence ending above the address, the inner one for 0x1008, and it
    # starts above: no row, as llvm-symbolizer answers
    sections = plain_program()
    sections[".debug_line"] = line_program([([(0x1000, 10)], 0x1040), ([(0x1010, 30)], 0x1020)])
    got = chains(sections, 0x1008, 0x1014, 0x1030)
    assert got[0x1008] == () and got[0x1014][-1].line == 12 and got[0x1030][-1].line == 10


# ------------------------------------------------------------------ llvm-symbolizer as the oracle

CASES = {
    "plain": (plain_program, [0x1004, 0x1014, 0x1030, 0x1040]),
    "identical sequences": (lambda: {**plain_program(), ".debug_line": line_program(
        [([(0x1000, 10)], 0x1040), ([(0x1000, 20)], 0x1040)])}, [0x1004]),
    "sequence inside another": (lambda: {**plain_program(), ".debug_line": line_program(
        [([(0x1000, 10)], 0x1040), ([(0x1010, 30)], 0x1020)])}, [0x1008, 0x1014, 0x1030]),
    "decl_line 0 first": (lambda: plain_program(decl_lines=(0, 9)), [0x1014]),
    "stmt_list as a string": (lambda: plain_program(STRING, b"x\0"), [0x1014]),
    "indirect form": (lambda: plain_program(INDIRECT, leb(SEC_OFFSET) + struct.pack("<I", 0)),
                      [0x1014]),
}


@pytest.fixture(scope="module")
def base_elf(tmp_path_factory):
    """An executable without DWARF, to carry hand-made sections."""
    from lines_programs import need
    need("gcc", "objcopy")
    d = tmp_path_factory.mktemp("hand-made")
    (d / "x.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-O2", "-o", str(d / "x"), str(d / "x.c")], check=True)
    return d / "x"


@pytest.mark.parametrize("case", list(CASES))
def test_each_hand_made_case_reads_as_llvm_symbolizer_reads_it(case, base_elf, tmp_path):
    from conftest import require
    from profiler.symbolize import lines
    tool = lines.find_tool()
    require(tool is not None, "llvm-symbolizer is not installed (Debian: llvm)")
    make, addresses = CASES[case]
    sections = make()
    args = ["objcopy"]
    for name, data in sections.items():
        (tmp_path / name).write_bytes(data)
        args += ["--add-section", f"{name}={tmp_path / name}"]
    subprocess.run([*args, str(base_elf), str(tmp_path / "elf")], check=True)
    theirs = lines.run_symbolizer(tool, str(tmp_path / "elf"), addresses)
    ours = chains(sections, *addresses)

    def plain(chain):  # llvm-symbolizer names the outermost level from the symbol table
        return chain[:-1] + tuple(level._replace(function="") for level in chain[-1:])
    assert {a: plain(c) for a, c in ours.items()} == {a: plain(c) for a, c in theirs.items()}
