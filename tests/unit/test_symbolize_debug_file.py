"""Which file gives an object's lines, and what the user gets when it is
bad (profiler/symbolize/dwarf_file.py, lines.py, through build_profile):
a debug file found by build-id gives lines; one of another build, a
truncated one or one of an unknown DWARF version gives names without
lines and one warning; without llvm-symbolizer our reader gives the
lines, except for zstd, which gives one warning naming the remedy; a small
object starts no process."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lines_programs import build_c, instruction_starts, need
from profiler.binary.cache import SymbolCache
from profiler.symbolize import lines
from profiler.symbolize.objfile import load_object


# ------------------------------------------------------------------ refused files


@pytest.fixture(scope="module")
def stripped(tmp_path_factory):
    """A program stripped of its DWARF and its debug file, installed by
    build-id in a debug directory of our own."""
    need("gcc", "objcopy", "readelf")
    d = tmp_path_factory.mktemp("lines-debug")
    exe = build_c(d, "prog", ["-g", "-Wl,--build-id"])
    debug = d / "prog.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(debug)], check=True)
    # Without DWARF, with its symbol table: names, and lines only from the debug file
    subprocess.run(["objcopy", "--strip-debug", str(exe), str(d / "prog.stripped")], check=True)
    obj = load_object(str(exe), cache=SymbolCache(None))
    h = obj.build_id.hex()
    debug_dir = d / "debugroot"
    (debug_dir / ".build-id" / h[:2]).mkdir(parents=True)
    return d, obj.build_id, debug, debug_dir / ".build-id" / h[:2] / f"{h[2:]}.debug"


def test_debug_file_by_build_id_gives_lines(stripped):
    d, build_id, debug, slot = stripped
    shutil.copy(debug, slot)
    obj = load_object(str(d / "prog.stripped"), debug_dirs=(str(slot.parents[2]),),
                      cache=SymbolCache(None))
    dwarf, problems = lines.find_dwarf(obj.path, obj.build_id, obj.debuglink, obj.origin,
                                       obj.root, obj.debug_dirs)
    assert dwarf is not None and dwarf.path == str(slot) and problems == []


def test_debug_file_of_another_build_is_refused(stripped, tmp_path):
    d, build_id, debug, slot = stripped
    shutil.copy(debug, slot)
    other = bytes([build_id[0]]) + bytes(b ^ 0xFF for b in build_id[1:])
    found, why = lines.check_dwarf_file(str(slot), other)
    assert found is None and "another build" in why


def test_truncated_debug_file_gives_names_without_lines_and_one_warning(stripped):
    d, build_id, debug, slot = stripped
    data = debug.read_bytes()
    slot.write_bytes(data[: len(data) * 2 // 3])
    obj = load_object(str(d / "prog.stripped"), debug_dirs=(str(slot.parents[2]),),
                      cache=SymbolCache(None))
    dwarf, problems = lines.find_dwarf(obj.path, obj.build_id, obj.debuglink, obj.origin,
                                       obj.root, obj.debug_dirs)
    assert dwarf is None and len(problems) == 1 and "truncated" in problems[0]


def test_unknown_dwarf_version_is_refused(tmp_path):
    need("gcc", "readelf")
    exe = build_c(tmp_path, "v5", ["-gdwarf-5"])
    data = bytearray(exe.read_bytes())
    from elftools.elf.elffile import ELFFile
    with open(exe, "rb") as f:
        info = ELFFile(f).get_section_by_name(".debug_info")["sh_offset"]
    data[info + 4:info + 6] = (9).to_bytes(2, "little")
    exe.write_bytes(bytes(data))
    found, why = lines.check_dwarf_file(str(exe), None)
    assert found is None and "DWARF version 9" in why


# ------------------------------------------------------------------ through build_profile


def _raw_profile(exe: Path, vaddrs: list[int]):
    """A recording of one process that mapped `exe` at BASE, sampled at
    these addresses (each its own one-frame stack)."""
    from profiler.model.maps import MapEntry
    from profiler.model.raw import (CountRecord, MapsSnapshot, ProcessInfo, RawProfile,
                                    RecordingInfo)
    base = 0x555555554000
    entry = MapEntry(start=base, end=base + 0x100000, perms="r-xp", offset=0, dev="fd:01",
                     inode=os.stat(exe).st_ino, path=str(exe))
    info = RecordingInfo(target="PID 5", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=1.0, cpus=(0,), sides="user",
                         per_thread=False, started=1.5, command_status=0,
                         stopped_by="duration")
    return RawProfile(
        info=info,
        counts=tuple(CountRecord(pid=5, tid=0, comm="prog", user_stack=i + 1, kernel_stack=0,
                                 count=1) for i in range(len(vaddrs))),
        stacks={i + 1: (base + v,) for i, v in enumerate(vaddrs)},
        processes={5: ProcessInfo(pid=5, snapshots=(MapsSnapshot(time=0.1, entries=(entry,)),))},
        stats={"samples": len(vaddrs), "lost_stack_store_full": 0, "lost_counts_map_full": 0,
               "kernel_walk_errors": 0})


def _work_addresses(exe: Path) -> list[int]:
    return instruction_starts(exe, lambda n: n == "work")[2:8]


def _built(stripped_exe: Path, debug_root: Path, monkeypatch):
    from profiler.binary import cache
    from profiler.options import SymbolizeOptions
    from profiler.symbolize.build import build_profile
    # nothing remembered from another test's debug file, nothing kept on disk
    monkeypatch.setattr(cache, "_DEFAULT", SymbolCache(None))
    raw = _raw_profile(stripped_exe, _work_addresses(stripped_exe.parent / "prog"))
    return build_profile(raw, options=SymbolizeOptions(debug_dirs=(str(debug_root),)))


def _named_lines(profile):
    out = []
    for loc in profile.locations.values():
        out.append([(profile.functions[l.function_id].name,
                     profile.functions[l.function_id].filename, l.line) for l in loc.lines])
    return out


def test_build_profile_reads_lines_from_the_debug_file(stripped, monkeypatch):
    d, build_id, debug, slot = stripped
    shutil.copy(debug, slot)
    profile = _built(d / "prog.stripped", slot.parents[2], monkeypatch)
    named = _named_lines(profile)
    assert named and all(chain[-1][0] == "work" and chain[-1][1].endswith("inline_chain.c")
                         and chain[-1][2] > 0 for chain in named), named
    assert any(len(chain) > 1 for chain in named), named  # inlined code in work
    m = next(iter(profile.mappings.values()))
    assert m.has_line_numbers and m.has_filenames and m.has_inline_frames
    assert not any("source lines" in w for w in profile.meta.warnings)


@pytest.mark.parametrize("damage", ["truncated", "another build"])
def test_a_bad_debug_file_gives_names_without_lines_and_one_warning(stripped, damage,
                                                                   monkeypatch):
    d, build_id, debug, slot = stripped
    data = bytearray(debug.read_bytes())
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    else:  # the build-id note's bytes flipped: a debug file of another build
        at = bytes(data).find(build_id)
        data[at:at + len(build_id)] = bytes(b ^ 0x5A for b in build_id)
    slot.write_bytes(bytes(data))
    profile = _built(d / "prog.stripped", slot.parents[2], monkeypatch)
    named = _named_lines(profile)
    assert named and all(chain == [("work", "", 0)] for chain in named), named
    warnings = [w for w in profile.meta.warnings if "source lines" in w]
    assert len(warnings) == 1 and damage in warnings[0], profile.meta.warnings
    m = next(iter(profile.mappings.values()))
    assert not (m.has_line_numbers or m.has_filenames or m.has_inline_frames)


def test_without_llvm_symbolizer_lines_come_from_our_reader(stripped, monkeypatch):
    d, build_id, debug, slot = stripped
    shutil.copy(debug, slot)
    monkeypatch.setattr(lines, "find_tool", lambda: None)
    monkeypatch.setattr(lines, "IN_PROCESS_LIMIT", 0)  # whatever the size
    profile = _built(d / "prog.stripped", slot.parents[2], monkeypatch)
    named = _named_lines(profile)
    assert named and all(chain[-1][0] == "work" and chain[-1][1].endswith("inline_chain.c")
                         and chain[-1][2] > 0 for chain in named), named
    assert any(len(chain) > 1 for chain in named), named
    assert not profile.meta.warnings


def test_without_llvm_symbolizer_zstd_gives_names_without_lines_and_one_warning(
        stripped, monkeypatch):
    d, build_id, debug, slot = stripped
    subprocess.run(["objcopy", "--compress-debug-sections=zstd", str(debug), str(slot)],
                   check=True)
    monkeypatch.setattr(lines, "find_tool", lambda: None)
    profile = _built(d / "prog.stripped", slot.parents[2], monkeypatch)
    assert all(chain == [("work", "", 0)] for chain in _named_lines(profile))
    warnings = [w for w in profile.meta.warnings if "llvm-symbolizer" in w]
    assert len(warnings) == 1 and "zstd" in warnings[0] and "apt install llvm" in warnings[0]


def test_small_objects_are_read_without_starting_a_process(stripped, monkeypatch):
    d, build_id, debug, slot = stripped
    shutil.copy(debug, slot)

    def no_process(*args, **kwargs):
        raise AssertionError("llvm-symbolizer ran for a small object")
    monkeypatch.setattr(lines, "run_symbolizer", no_process)
    profile = _built(d / "prog.stripped", slot.parents[2], monkeypatch)
    assert any(len(chain) > 1 for chain in _named_lines(profile))
    assert not profile.meta.warnings


def _debug_info_size(path: Path, tmp_path: Path) -> int:
    """readelf's size of .debug_info, uncompressed (objcopy decompresses a copy)."""
    plain = tmp_path / (path.name + ".plain")
    subprocess.run(["objcopy", "--decompress-debug-sections", str(path), str(plain)],
                   check=True)
    out = subprocess.run(["readelf", "-SW", str(plain)], capture_output=True, text=True,
                         check=True).stdout
    line = next(ln for ln in out.splitlines() if " .debug_info " in ln)
    return int(line.split("]", 1)[1].split()[4], 16)  # Name Type Address Off Size


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "zlib"])
def test_the_engine_is_chosen_by_the_whole_debug_info(tmp_path, monkeypatch, compress):
    """An object over IN_PROCESS_LIMIT goes to llvm-symbolizer, one at it
    stays in this process: by .debug_info's whole size (readelf's), not by
    the part read to check its version."""
    from conftest import require
    from lines_programs import build_cpp
    need("g++", "objcopy", "readelf")
    tool = lines.find_tool()
    require(tool is not None, "llvm-symbolizer is not installed (Debian: llvm)")
    exe = build_cpp(tmp_path)
    if compress:
        subprocess.run(["objcopy", "--compress-debug-sections=zlib", str(exe)], check=True)
    size = _debug_info_size(exe, tmp_path)
    assert size > 1 << 16  # past what checking the file reads
    found, why = lines.check_dwarf_file(str(exe), None)
    assert found is not None and found.info_size == size, why
    addresses = instruction_starts(exe, lambda n: n == "main")[:20]
    ran = []
    real = lines.run_symbolizer
    monkeypatch.setattr(lines, "run_symbolizer", lambda *a, **k: ran.append(1) or real(*a, **k))
    for limit, expected in ((size - 1, [1]), (size, [])):
        monkeypatch.setattr(lines, "IN_PROCESS_LIMIT", limit)
        ran.clear()
        obj = load_object(str(exe), cache=SymbolCache(None))
        assert any(lines.ObjectLines(obj, None, tool).lookup(addresses).values())
        assert ran == expected, (limit, size)
