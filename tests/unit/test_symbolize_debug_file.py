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
