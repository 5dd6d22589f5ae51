"""CopyUnwinder: absolute pcs -> rows through a process's maps and files,
on a real stack copy that a program made of itself (its own maps too), and
names checked with binutils' addr2line."""
from __future__ import annotations

import shutil
import subprocess

from conftest import require
from profiler.model.maps import parse_maps
from profiler.model.raw import TRUNCATED
from profiler.unwind.copies import CopyUnwinder
from test_unwind_dwarf import PROGRAM


def _self_copy(tmp_path):
    for tool in ("gcc", "addr2line"):
        require(shutil.which(tool) is not None, f"needs {tool}")
    src = tmp_path / "selfcopy.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "selfcopy"
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", str(src), "-o", str(exe)],
                   check=True, capture_output=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([str(exe), str(out)], check=True, timeout=30)
    ip, sp, bp = (int(w, 16) for w in (out / "regs").read_text().split())
    entries = tuple(e for e in parse_maps((out / "maps").read_text()) if e.executable)
    return ip, sp, bp, (out / "stack").read_bytes(), entries, str(exe)


def _unwinder(entries):
    return CopyUnwinder(lambda pid: entries if pid == 7 else None,
                        lambda e: e.file_path, lambda pid: None)


def _name(entries, pc, exe):
    entry = next(e for e in entries if e.contains(pc))
    if entry.file_path != exe:
        return entry.module
    line = subprocess.run(["addr2line", "-f", "-e", exe, hex(pc - entry.start + entry.offset)],
                          capture_output=True, text=True).stdout
    return line.split("\n")[0]


def test_a_whole_copy_unwinds_to_the_entry_point(tmp_path):
    ip, sp, bp, stack, entries, exe = _self_copy(tmp_path)
    unwinder = _unwinder(entries)
    frames = unwinder.unwind(7, ip, sp, bp, stack)
    names = [_name(entries, pc if i == 0 else pc - 1, exe) for i, pc in enumerate(frames)]
    assert names[:4] == ["deepest", "level2", "level1", "main"], names
    assert names[-1] == "_start", names
    assert unwinder.stops == {"outermost": 1} and unwinder.truncated == 0
    # Warm: the same answer from the row caches.
    assert unwinder.unwind(7, ip, sp, bp, stack) == frames


def test_a_copy_cut_short_ends_in_the_truncated_marker(tmp_path):
    ip, sp, bp, stack, entries, exe = _self_copy(tmp_path)
    unwinder = _unwinder(entries)
    whole = unwinder.unwind(7, ip, sp, bp, stack)
    cut = unwinder.unwind(7, ip, sp, bp, stack[:256])
    assert cut[-1] == TRUNCATED and unwinder.truncated == 1
    assert cut[:-1] == whole[:len(cut) - 1]  # what was unwound is right, nothing invented


def test_a_process_without_maps_gives_the_sampled_pc_alone(tmp_path):
    ip, sp, bp, stack, entries, _exe = _self_copy(tmp_path)
    unwinder = _unwinder(entries)
    frames = unwinder.unwind(8, ip, sp, bp, stack)  # no maps: no CFI, no usable fp
    assert frames[0] == ip and TRUNCATED not in frames


def test_an_interrupted_pc_is_handed_on_one_past_itself(monkeypatch):
    """After a signal frame the pc is the interrupted instruction itself,
    not a return address: one past it, the symbolizer's usual step back
    (code_address) lands on it, even at a function's first byte."""
    from profiler.binary.addresses import code_address
    from profiler.unwind import dwarf
    walked = dwarf.Unwound((0x1000, 0x2000, 0x3000, 0x4000), False, "outermost", (2,))
    monkeypatch.setattr(dwarf, "unwind_stack", lambda *a, **k: walked)
    unwinder = CopyUnwinder(lambda pid: (), lambda e: None, lambda pid: None)
    frames = unwinder.unwind(7, 0x1000, 0x7000, 0, b"")
    assert frames == (0x1000, 0x2000, 0x3001, 0x4000)
    assert [code_address(pc, i == 0) for i, pc in enumerate(frames)] == \
        [0x1000, 0x1FFF, 0x3000, 0x3FFF]
