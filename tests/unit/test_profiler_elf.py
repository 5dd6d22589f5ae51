"""ELF symbols and the address formulas, on binaries compiled in the test."""
import shutil
import subprocess

import pytest

from conftest import require

from profiler.model.maps import MapEntry
from profiler.model.raw import MapsSnapshot, ProcessInfo, RawProfile, RecordingInfo
from profiler.binary.addresses import elf_vaddr, file_offset
from profiler.binary.elf import read_image_file
from profiler.symbolize.symbolizer import Symbolizer

SRC = """
__attribute__((noinline)) int alpha(int x) { return x * 3 + 1; }
__attribute__((noinline)) int beta(int x) { return alpha(x) + 2; }
int main(int argc, char **argv) { return beta(argc); }
"""


def nm(path):
    out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True).stdout
    return {l.split()[2]: int(l.split()[0], 16) for l in out.splitlines() if len(l.split()) == 3}


@pytest.fixture(scope="module", params=["-pie", "-no-pie"])
def binary(request, tmp_path_factory):
    require(shutil.which("gcc") is not None and shutil.which("nm") is not None,
            "needs gcc and nm")
    d = tmp_path_factory.mktemp("elf")
    (d / "t.c").write_text(SRC)
    exe = d / "t"
    subprocess.run(["gcc", "-O1", request.param, "-fPIE" if request.param == "-pie" else "-fno-pie",
                    "-o", str(exe), str(d / "t.c")], check=True)
    return str(exe)


def test_formulas():
    assert file_offset(0x7F0000001234, 0x7F0000001000, 0x1000) == 0x1234
    assert elf_vaddr(0x1234, 0x1000, 0x401000) == 0x401234


def test_symbols_by_vaddr(binary):
    table = read_image_file(binary).symtab
    syms = nm(binary)
    for name in ("alpha", "beta", "main"):
        assert table.lookup(syms[name]) == (name, 0)
        assert table.lookup(syms[name] + 1) == (name, 1)


def test_user_frame_through_maps_snapshot(binary):
    """Map the text segment at a made-up address, as the loader would, and
    resolve an absolute address through snapshot -> file offset -> vaddr."""
    elf = read_image_file(binary)
    text = next(s for s in elf.segments if s.vaddr <= nm(binary)["alpha"] < s.vaddr + s.filesz)
    base = 0x7F5500000000 if "-pie" in binary or text.vaddr < 0x400000 else 0
    start = base + text.vaddr - text.offset % 4096 if base else text.vaddr - text.offset % 4096
    page_off = text.offset - text.offset % 4096
    entry = MapEntry(start=start, end=start + text.filesz + 8192, perms="r-xp",
                     offset=page_off, dev="fd:01", inode=1, path=binary)
    profile = RawProfile(
        info=RecordingInfo(target="t", event="cpu-clock", event_type=1, event_config=0,
                           frequency=99, period=None, duration=1.0, cpus=(0,), sides="both",
                           per_thread=False, started=0.0),
        counts=(), stacks={},
        processes={5: ProcessInfo(pid=5, snapshots=(MapsSnapshot(time=0, entries=(entry,)),))},
        stats={})
    sym = Symbolizer(profile, lambda e: binary)
    addr = entry.start + (nm(binary)["beta"] - text.vaddr) + (text.offset - page_off) + 2
    assert sym.user_frame(5, addr, leaf=True).name == "beta"
    far = entry.end - 1
    frame = sym.user_frame(5, far, leaf=True)
    assert not frame.resolved and frame.name.startswith("t+0x")
    assert sym.user_frame(5, 0x10, leaf=True).name == "[unmapped]+0x10"
    assert sym.user_frame(6, 0x10, leaf=True).name == "[no maps]+0x10"


SYSTEM_FILES = ["/usr/bin/python3.11", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/bin/ls", "/usr/bin/node"]


@pytest.mark.parametrize("path", SYSTEM_FILES)
def test_header_reader_agrees_with_pyelftools(path):
    """Our struct-level reader against pyelftools, an independent one, on
    real distribution files: PT_LOAD segments, build-id, debuglink, and the
    functions of .symtab/.dynsym."""
    import os
    require(os.path.exists(path), f"{path} not installed")
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection, SymbolTableSection
    ours = read_image_file(path)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        loads = [(s["p_offset"], s["p_vaddr"], s["p_filesz"]) for s in elf.iter_segments()
                 if s["p_type"] == "PT_LOAD"]
        assert [(s.offset, s.vaddr, s.filesz) for s in ours.segments] == loads
        build_id = None
        for sec in elf.iter_sections():
            if isinstance(sec, NoteSection):
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                        build_id = bytes.fromhex(note["n_desc"])
        assert ours.build_id == build_id
        link = elf.get_section_by_name(".gnu_debuglink")
        if link is None:
            assert ours.debuglink is None
        else:
            data = link.data()
            assert ours.debuglink[0] == data[:data.index(b"\0")].decode()
        table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
        ours_table = ours.symtab or ours.dynsym
        assert isinstance(table, SymbolTableSection)
        funcs = {s["st_value"] for s in table.iter_symbols()
                 if s["st_info"]["type"] in ("STT_FUNC", "STT_LOOS") and s["st_value"]
                 and s["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS", "SHN_COMMON")}
        # Untyped symbols of code sections name only what no function covers.
        from profiler.binary.symtab import LABEL_RANK
        labels = {v for v, r in zip(ours_table.starts, ours_table.ranks) if r == LABEL_RANK}
        assert set(ours_table.starts) - labels == funcs
        code = {i for i, sec in enumerate(elf.iter_sections()) if sec["sh_flags"] & 0x4}
        untyped = {s["st_value"] for s in table.iter_symbols()
                   if s["st_info"]["type"] == "STT_NOTYPE" and s["st_shndx"] in code}
        assert labels <= untyped
        sized = [(s["st_value"], s["st_value"] + s["st_size"]) for s in table.iter_symbols()
                 if s["st_info"]["type"] in ("STT_FUNC", "STT_LOOS") and s["st_size"]]
        starts = sorted(sized)
        import bisect
        for label in labels:  # never inside a function
            i = bisect.bisect_right(starts, (label, float("inf"))) - 1
            assert i < 0 or not starts[i][0] <= label < starts[i][1], hex(label)


def test_untyped_assembly_entry_points_name_only_what_no_function_covers():
    """ld.so's `_start` (NOTYPE, no size) calls `_dl_start`: its return
    address is `_dl_start_user`, another label. Labels in code sections
    name the gaps between functions (as perf names them), never an address
    a function covers, and yield to a function at their own address; data
    sections' labels and ARM mapping symbols ($x, $d) never name code."""
    from profiler.binary import symtab
    strtab = b"\0_start\0_dl_start_user\0_dl_start\0inside\0$x\0table\0alias_label\0f\0"
    off = {name: strtab.index(b"\0" + name.encode() + b"\0") + 1
           for name in ("_start", "_dl_start_user", "_dl_start", "inside", "$x", "table",
                        "alias_label", "f")}
    notype, func, local, glob = 0, 2, 0, 1
    entries = [  # (st_name, st_info, st_shndx, st_value, st_size)
        (off["_start"], local << 4 | notype, 12, 0x1ab70, 0),
        (off["_dl_start_user"], local << 4 | notype, 12, 0x1ab78, 0),
        (off["_dl_start"], glob << 4 | func, 12, 0x1000, 0x200),
        (off["inside"], local << 4 | notype, 12, 0x1100, 0),  # within _dl_start
        (off["$x"], local << 4 | notype, 12, 0x3000, 0),
        (off["table"], glob << 4 | notype, 20, 0x9000, 0),  # a data section
        (off["f"], glob << 4 | func, 12, 0x4000, 0x10),
        (off["alias_label"], glob << 4 | notype, 12, 0x4000, 0),
    ]
    ends = {12: 0x5000, 20: 0xA000}
    table = symtab.build(entries, strtab, ends, frozenset({12}))
    assert table.lookup(0x1ab77) == ("_start", 7)  # a return address - 1, in _start
    assert table.lookup(0x1ab78) == ("_dl_start_user", 0)
    assert table.lookup(0x1100) == ("_dl_start", 0x100)  # a function keeps its range
    assert table.lookup(0x3004) is None  # a mapping symbol names nothing
    assert table.lookup(0x9000) is None  # nor does a data label
    assert table.lookup(0x4000) == ("f", 0)  # the function wins at its own address
    # Without code sections given (a caller that cannot tell), no labels at all.
    assert symtab.build(entries, strtab, ends).lookup(0x1ab77) is None


def test_a_label_yields_to_a_function_of_a_later_source():
    """MiniDebugInfo keeps untyped code symbols but leaves out what .dynsym
    exports: a label there inside an exported function must not name it."""
    from profiler.binary import elf as elf_mod
    from profiler.binary import symtab
    from profiler.symbolize.objfile import ObjectSymbols
    strtab = b"\0exported\0inner_label\0lonely\0"
    exported, inner, lonely = 1, strtab.index(b"inner_label"), strtab.index(b"lonely")
    glob_func, local_notype = 1 << 4 | 2, 0
    mini = symtab.build([(inner, local_notype, 12, 0x1080, 0),
                         (lonely, local_notype, 12, 0x3000, 0)], strtab, {12: 0x4000},
                        frozenset({12}))
    dynsym = symtab.build([(exported, glob_func, 12, 0x1000, 0x100)], strtab, {12: 0x4000})
    segment = elf_mod.LoadSegment(offset=0, vaddr=0, filesz=0x5000)
    obj = ObjectSymbols("lib.so", (segment,), {"symtab": None, "build-id": None,
                                                 "debuglink": None, "minidebuginfo": mini,
                                                 "dynsym": dynsym, "plt": None})
    assert obj.lookup(0x1090) == ("exported", 0x90, "dynsym")
    assert obj.lookup(0x3004) == ("lonely", 4, "minidebuginfo")  # no function anywhere
