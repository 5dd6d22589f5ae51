"""Source lines and inline chains (profiler/symbolize/lines.py).

The oracle is binutils `addr2line -a -f -i -C` (one batch process), over
every instruction start (sampled) inside the test programs' own functions:
C at -O2 with static inline and always_inline chains three deep, DWARF 4 and
5, zlib-compressed and not; C++ with templates and lambdas; Rust release
with debuginfo, in DWARF 4 and in LLVM's DWARF 5 (the strx, addrx and
rnglistx forms Clang writes too); and libc through Debian's debug file
found by build-id. The function, file, line of every inline level must
agree on >= 99.9% of all addresses together; every disagreement is
printed with both answers, and so is every known fault of addr2line's
that is excused.
"""
from __future__ import annotations

import collections
import os
import re
import subprocess

import pytest

from conftest import require
from lines_programs import (C_EXCLUDE, LineRows, addr2line, build_c, build_cpp, build_rust,
                            instruction_starts, libc_with_debug, need, sample,
                            symbol_addresses)
from profiler.binary.cache import SymbolCache
from profiler.symbolize import lines
from profiler.symbolize.demangle import demangle_all
from profiler.symbolize.objfile import load_object


# ------------------------------------------------------------------ pure parsing

JSON_OUT = (
    '{"Address":"0x1139","ModuleName":"/t/a.out","Symbol":['
    '{"Column":5,"Discriminator":0,"FileName":"/t/a.c","FunctionName":"leaf_mix","Line":9,'
    '"StartAddress":"","StartFileName":"/t/a.c","StartLine":8},'
    '{"Column":13,"Discriminator":0,"FileName":"/t/a.c","FunctionName":"middle_step",'
    '"Line":15,"StartAddress":"","StartFileName":"/t/a.c","StartLine":14},'
    '{"Column":0,"Discriminator":0,"FileName":"/t/a.c","FunctionName":"work","Line":40,'
    '"StartAddress":"0x1120","StartFileName":"/t/a.c","StartLine":38}]}\n'
    '{"Address":"0x1000","ModuleName":"/t/a.out","Symbol":['
    '{"Column":0,"Discriminator":0,"FileName":"??","FunctionName":"_init","Line":0,'
    '"StartAddress":"","StartFileName":"","StartLine":0}]}\n'
    '{"Address":"0x2000","ModuleName":"/t/a.out","Symbol":[]}\n')


def test_parse_llvm_json_chains_innermost_first():
    got = lines.parse_llvm_json(JSON_OUT)
    assert got[0x1139] == (lines.SourceFrame("leaf_mix", "/t/a.c", 9, 5, 8),
                           lines.SourceFrame("middle_step", "/t/a.c", 15, 13, 14),
                           lines.SourceFrame("work", "/t/a.c", 40, 0, 38))
    assert got[0x1000] == ()  # a symbol-table answer is not a line
    assert got[0x2000] == ()


def test_a_level_without_a_file_leaves_the_address_without_lines():
    text = JSON_OUT.splitlines()[0].replace('"FileName":"/t/a.c","FunctionName":"middle_step"',
                                            '"FileName":"??","FunctionName":"middle_step"')
    assert lines.parse_llvm_json(text) == {0x1139: ()}


def test_an_error_record_is_one_error():
    text = ('{"Address":"0x1139","Error":{"Message":"No such file or directory"},'
            '"ModuleName":"x"}\n')
    with pytest.raises(lines.LinesError, match="No such file"):
        lines.parse_llvm_json(text)


def _dwarf_file(path) -> lines.DwarfFile:
    st = os.stat(path)
    return lines.DwarfFile(str(path), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), True,
                           False, 1234)


def test_cache_encoding_round_trips(tmp_path):
    chains = lines.parse_llvm_json(JSON_OUT)
    (tmp_path / "debug").write_bytes(b"x")
    dwarf = _dwarf_file(tmp_path / "debug")
    assert lines._decode(lines._encode(dwarf, chains)) == (dwarf, chains)


def test_store_answers_while_the_file_that_answered_is_unchanged(tmp_path):
    store = lines.LinesStore(str(tmp_path / "cache"))
    chains = lines.parse_llvm_json(JSON_OUT)
    debug = tmp_path / "debug"
    debug.write_bytes(b"x")
    dwarf = _dwarf_file(debug)
    store.save(b"\xab\xcd\xef", dwarf, chains)
    assert store.load(b"\xab\xcd\xef") == (dwarf, chains)
    debug.write_bytes(b"another build's file")
    assert store.load(b"\xab\xcd\xef") is None
    debug.unlink()
    assert store.load(b"\xab\xcd\xef") is None


def test_store_refuses_answers_of_another_reader(tmp_path, monkeypatch):
    store = lines.LinesStore(str(tmp_path / "cache"))
    (tmp_path / "debug").write_bytes(b"x")
    store.save(b"\xab\xcd\xef", _dwarf_file(tmp_path / "debug"), lines.parse_llvm_json(JSON_OUT))
    monkeypatch.setattr(lines, "MAGIC", lines.MAGIC[:6] + bytes([lines.READER + 1]) +
                        lines.MAGIC[7:])
    assert store.load(b"\xab\xcd\xef") is None


def test_store_refuses_a_file_others_can_write(tmp_path):
    store = lines.LinesStore(str(tmp_path))
    chains = lines.parse_llvm_json(JSON_OUT)
    (tmp_path / "debug").write_bytes(b"x")
    dwarf = _dwarf_file(tmp_path / "debug")
    store.save(b"\xab\xcd\xef", dwarf, chains)
    assert store.load(b"\xab\xcd\xef") == (dwarf, chains)
    path = tmp_path / "ab" / "cdef.lines"
    os.chmod(path, 0o666)
    assert store.load(b"\xab\xcd\xef") is None


# ------------------------------------------------------------------ the oracle

def _ours(path: str, addresses: list[int], engine: str) -> dict[int, tuple]:
    tool = lines.find_tool()
    require(tool is not None, "llvm-symbolizer is not installed (Debian: llvm)")
    obj = load_object(path, cache=SymbolCache(None))
    source = lines.ObjectLines(obj, None, tool)
    chains = _engine_chains(source, addresses, engine)
    names = demangle_all(level.function for c in chains.values() for level in c)
    out = {}
    for a, chain in chains.items():
        levels = [(names.get(l.function, l.function), os.path.normpath(l.file), l.line)
                  for l in chain]
        named = obj.lookup(_offset(obj, a)) if levels else None
        if named:
            # A profile names the outermost level from the symbol table
            # (build.py), as a frame without DWARF reads; DWARF names the
            # levels inlined into it.
            levels[-1] = (demangle_all([named[0]]).get(named[0], named[0]), *levels[-1][1:])
        out[a] = tuple(levels)
    return out


def _offset(obj, vaddr: int) -> int:
    for offset, start, size in obj._segments:
        if start <= vaddr < start + size:
            return vaddr - start + offset
    return -1


# GCC's clones of a function, as the symbol table spells them, mangled and
# demangled: main.cold, f.isra.0, "f(long) [clone .isra.0]".
_CLONE = re.compile(r"((\.(cold|part\.\d+|isra\.\d+|constprop\.\d+|lto_priv\.\d+))"
                    r"|( \[clone [^\]]*\]))+$")


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> list[tuple[str, str, str, list[int]]]:
    """(label, file to look up, file for the oracle, addresses)."""
    need("gcc", "g++", "rustc", "objdump", "addr2line", "readelf", "objcopy")
    d = tmp_path_factory.mktemp("lines")
    out = []
    for label, flags in (("c-dwarf4", ["-gdwarf-4"]), ("c-dwarf5", ["-gdwarf-5"]),
                         ("c-dwarf4-zlib", ["-gdwarf-4", "-gz=zlib"]),
                         ("c-dwarf5-zlib", ["-gdwarf-5", "-gz=zlib"])):
        exe = build_c(d, label, flags)
        addrs = instruction_starts(exe, lambda n: n not in C_EXCLUDE and "@" not in n)
        out.append((label, str(exe), str(exe), sample(addrs, 700)))
    cpp = build_cpp(d)
    cpp_addrs = instruction_starts(cpp, lambda n: n not in C_EXCLUDE and "@" not in n)
    out.append(("c++", str(cpp), str(cpp), sample(cpp_addrs, 1500)))
    # zstd-compressed sections (GCC 12 only writes zlib; objcopy recompresses)
    zstd = d / "templates-zstd"
    subprocess.run(["objcopy", "--compress-debug-sections=zstd", str(cpp), str(zstd)],
                   check=True)
    out.append(("c++-zstd", str(zstd), str(zstd), sample(cpp_addrs, 500, seed=5)))
    rust = build_rust(d)
    out.append(("rust", str(rust), str(rust),
                sample(instruction_starts(rust, lambda n: "lines_demo" in n), 1500)))
    rust5 = build_rust(d, dwarf5=True)  # LLVM's DWARF 5 forms, as Clang writes them
    out.append(("rust-dwarf5", str(rust5), str(rust5),
                sample(instruction_starts(rust5, lambda n: "lines_demo" in n), 1000, seed=7)))
    libc, debug = libc_with_debug()
    out.append(("libc", libc, debug,
                sample(instruction_starts(libc, lambda n: not n.endswith("@plt") and
                                          ".plt" not in n), 3000)))
    return out


def _same_function(want: str, got: str, aliases: dict[str, set[int]]) -> bool:
    """The outermost level's names. Profiles (and llvm-symbolizer) name it
    from the symbol table, addr2line from DWARF: equal, or equal without
    GCC's clone suffixes (main.cold is DWARF's main), or symbol versions
    (memcpy@GLIBC_2.14), or aliases at one address (scalbn, __ldexp), or
    DWARF's short name of the symbol's function (_M_invoke)."""
    plain = [_CLONE.sub("", n.split("@")[0]) for n in (want, got)]
    if plain[0] == plain[1]:
        return True
    if aliases.get(plain[0], set()) & aliases.get(plain[1], set()):
        return True
    return f"::{plain[0]}(" in plain[1] or plain[1].startswith(plain[0] + "(")


# Programs in LLVM's DWARF 5, where binutils 2.40 leaves inlined levels out
# (test_addr2line_leaves_out_levels_of_llvms_dwarf5_only shows it on the
# same source built with DWARF 4, where addr2line gives every level).
LLVM_DWARF5 = {"rust-dwarf5"}


def _table_says_ours(row: tuple[str, int] | None, got: tuple) -> bool:
    """readelf's decoded line table has our innermost file and line. It
    prints the file as the table names it: a base name (GCC) or a path
    below the unit's directory (LLVM's DWARF 5)."""
    return row is not None and bool(got) and row[1] == got[0][2] and \
        os.path.normpath(got[0][1]).endswith("/" + os.path.normpath(row[0]))


def _compare(want: tuple, got: tuple, row: tuple[str, int] | None,
             aliases: dict[str, set[int]], llvm_dwarf5: bool = False) -> str:
    """"same"; "no line" (DWARF has line 0 at the address, and so do we);
    "quirk" (binutils' naming of an inlined innermost level, below);
    "table" (addr2line's innermost file differs from ours, and the decoded
    line table, read by readelf, says ours); "levels left out" (LLVM's
    DWARF 5 only: addr2line's chain is ours without inlined levels 1..k,
    its innermost named as the level it resumes at); or "differ"."""
    if want and want[0][2] == 0:
        # DWARF line 0: code no source line accounts for (addr2line prints
        # the unit's name as its file). Right is saying no line too.
        return "no line" if not got or got[0][2] == 0 else "differ"
    if llvm_dwarf5 and 0 < len(want) < len(got):
        # the innermost location is ours; the levels after it are our
        # outermost ones; the innermost is named as the level it resumes at
        resumes = len(got) - len(want)
        if len(want) == 1:
            same_rest = _same_function(want[0][0], got[-1][0], aliases)
        else:
            same_rest = want[1:-1] == got[resumes + 1:-1] and want[-1][1:] == got[-1][1:] \
                and _same_function(want[-1][0], got[-1][0], aliases) \
                and want[0][0] == got[resumes][0]
        innermost = want[0][1:] == got[0][1:] or _table_says_ours(row, got)
        return "levels left out" if same_rest and innermost else "differ"
    if len(want) != len(got):
        return "differ"
    if not want:
        return "same"
    kind = "same"
    if want[0][1:] != got[0][1:]:
        # binutils 2.40 gives some DWARF 5 rows the unit's main file
        # (templates.cpp:243 in a 30-line file): readelf's decoded table
        # is the second opinion.
        if not _table_says_ours(row, got):
            return "differ"
        kind = "table"
        want = ((want[0][0], *got[0][1:]), *want[1:])
    if want[1:-1] != got[1:-1] or want[-1][1:] != got[-1][1:]:
        return "differ"
    if not _same_function(want[-1][0], got[-1][0], aliases):
        return "differ"
    if len(want) == 1 or want[0][0] == got[0][0]:
        return kind
    # binutils (dwarf2.c, _bfd_dwarf2_find_nearest_line) names a function
    # whose DIE has no linkage name (C++ lambdas and member templates,
    # inlined) after the symbol-table function holding the address: the
    # innermost level then reads as the outermost function.
    return "quirk" if _same_function(want[0][0], got[-1][0], aliases) else "differ"


def _named(path: str, addresses: list[int]) -> list[int]:
    """The addresses inside a function by the symbol table's sizes (a
    profile asks lines only for frames it named)."""
    obj = load_object(path, cache=SymbolCache(None))
    return [a for a in addresses if obj.lookup(_offset(obj, a)) is not None]


def _engine_chains(source: lines.ObjectLines, addresses: list[int], engine: str) -> dict:
    """Lookups by one engine, whatever the object's size: "in-process"
    (our DWARF reader; zstd files still go to llvm-symbolizer) or
    "llvm-symbolizer"."""
    limit = 1 << 62 if engine == "in-process" else -1
    saved = lines.IN_PROCESS_LIMIT
    lines.IN_PROCESS_LIMIT = limit
    try:
        return source.lookup(addresses)
    finally:
        lines.IN_PROCESS_LIMIT = saved


@pytest.mark.parametrize("engine", ["in-process", "llvm-symbolizer"])
def test_lines_agree_with_addr2line(programs, engine):
    total, kinds, bad, quirks, counts = 0, collections.Counter(), [], [], {}
    inline_seen = 0
    for label, path, oracle_path, addresses in programs:
        named = _named(path, addresses)
        want = addr2line(oracle_path, named)
        rows = LineRows(oracle_path)
        aliases = symbol_addresses(oracle_path)
        got = _ours(path, named, engine)
        counts[label] = len(named)
        for a in named:
            total += 1
            if len(got[a]) > 1:
                inline_seen += 1
            kind = _compare(want.get(a, ()), got[a], rows.at(a), aliases, label in LLVM_DWARF5)
            kinds[kind] += 1
            if kind == "differ":
                bad.append((label, a, want.get(a), got[a]))
            elif kind in ("quirk", "table", "levels left out"):
                quirks.append((label, a, want.get(a), got[a]))

    def listing(rows):
        return "\n".join(f"  {label} 0x{a:x}\n    addr2line: {w}\n    ours:      {g}"
                         for label, a, w, g in rows)
    agreement = 1 - len(bad) / total
    print(f"\nlines ({engine}): {total} addresses {counts}, {inline_seen} with inline chains, "
          f"{dict(kinds)}, agreement {agreement:.4%}, {len(bad)} disagreements\n"
          f"{listing(bad)}\naddr2line's known faults (innermost inlined level named "
          f"after the enclosing symbol; another file than the line table's; inlined "
          f"levels of LLVM's DWARF 5 left out) "
          f"({len(quirks)}, first 20):\n{listing(quirks[:20])}")
    assert total >= 5000, counts
    assert inline_seen > 500, "the programs should have inlined code"
    assert agreement >= 0.999, f"{len(bad)} of {total} disagree:\n{listing(bad)}"


def test_addr2line_leaves_out_levels_of_llvms_dwarf5_only(programs):
    """Why the oracle test lets addr2line's chains on LLVM's DWARF 5 be
    shorter than ours: wherever, in drop_in_place::<Vec<String>>, addr2line
    gives fewer levels than we read from the DWARF 5 build, our chain (file
    and line of every level) is one addr2line itself gives for the same
    source built with DWARF 4."""
    paths = {label: path for label, path, _oracle, _addresses in programs}
    four = paths["rust"]
    five = paths["rust-dwarf5"]
    drop = "drop_in_place"

    def legacy(n):  # rustc's legacy mangling of the DWARF 4 build
        return drop in n and "Vec$LT$alloc..string..String$GT$$GT$" in n

    def v0(n):  # and its v0 mangling of the DWARF 5 build
        return drop in n and "3vec3Vec" in n and "6string6StringEE" in n and "lines_demo" in n

    def places(chain):
        return tuple((os.path.normpath(level[1]), level[2]) for level in chain)
    four_addresses = instruction_starts(four, legacy)
    five_addresses = instruction_starts(five, v0)
    assert four_addresses and five_addresses
    whole = {places(c) for c in addr2line(four, four_addresses).values()}
    ours = _ours(five, five_addresses, "in-process")
    theirs = addr2line(five, five_addresses)
    shorter = [a for a in five_addresses if len(theirs.get(a, ())) < len(ours[a])]
    print(f"\ndrop_in_place::<Vec<String>>: {len(five_addresses)} addresses, addr2line "
          f"leaves levels out at {len(shorter)}")
    assert shorter, "addr2line reads LLVM's DWARF 5 whole now: LLVM_DWARF5 can go"
    assert all(places(ours[a]) in whole for a in shorter), \
        [(hex(a), ours[a]) for a in shorter if places(ours[a]) not in whole]


def test_our_reader_agrees_with_llvm_symbolizer_on_every_level(programs):
    """The two engines, level by level: function (linkage name), file,
    line, column and start line. Two differences are by design: the
    outermost level's function, which llvm-symbolizer takes from the
    symbol table (a profile names that level from it too), and code no
    unit covers (crtstuff's), where llvm-symbolizer gives the symbol
    table's STT_FILE name at line 0 and we give no line, as for an object
    without DWARF."""
    tool = lines.find_tool()
    require(tool is not None, "llvm-symbolizer is not installed (Debian: llvm)")
    total, outside, differ = 0, 0, []

    def plain(chain):
        return chain[:-1] + tuple(level._replace(function="") for level in chain[-1:])
    for label, path, _oracle, addresses in programs:
        if "zstd" in label:
            continue  # our reader hands these to llvm-symbolizer
        obj = load_object(path, cache=SymbolCache(None))
        ours = _engine_chains(lines.ObjectLines(obj, None, tool), addresses, "in-process")
        theirs = _engine_chains(lines.ObjectLines(obj, None, tool), addresses,
                                "llvm-symbolizer")
        for a in addresses:
            total += 1
            if not ours[a] and len(theirs[a]) == 1 and theirs[a][0].line == 0 and \
                    "/" not in theirs[a][0].file:
                outside += 1
            elif plain(ours[a]) != plain(theirs[a]):
                differ.append(f"  {label} 0x{a:x}\n    llvm-symbolizer: {theirs[a]}\n"
                              f"    ours:            {ours[a]}")
    print(f"\nengines: {total} addresses, {outside} outside every unit, "
          f"{len(differ)} differ")
    assert total >= 5000 and outside < total // 20
    assert not differ, "\n".join(differ[:30])
