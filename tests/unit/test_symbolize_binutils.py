"""The symbolizer's names, proven against binutils.

Binaries are built here, in every shape a profiler meets: PIE and non-PIE
executables, a shared library (also one whose text is not at vaddr ==
offset), stripped files whose names live in a .gnu_debuglink file (next to
the binary, in its .debug/, under a debug directory; and a stale one whose
CRC does not match), in a build-id debug file, in MiniDebugInfo, C++ and Rust
(v0 and legacy mangling). For every function symbol with a size in the
UNSTRIPPED file, the first, middle and last byte are turned into file offsets
(from `readelf -lW`'s PT_LOAD headers, independently of the code under test)
and named by the symbolizer; the oracle is `addr2line -f -C` on the unstripped
file (cross-checked against `nm -C`), or `nm -C` where DWARF and the symbol
table genuinely disagree (Rust, see `_oracle`). Agreement must be 100%.

Malformed files (truncated, garbage section headers, e_shoff past the end,
empty, not ELF, missing) must never raise and name frames `module+0xOFFSET`
or, at worst, with a correct name from what is still readable.
"""
from __future__ import annotations

import collections
import random
import struct

import pytest

from profiler.symbolize.objfile import load_object
from profiler.symbolize.symbolizer import name_offsets

from binutils_shapes import (ALIAS_PAIRS, CPP_FUNCS, C_FUNCS, Builder, file_offset,
                             load_segments, module_of, need)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Builder:
    need("nm", "addr2line", "readelf")
    return Builder(tmp_path_factory.mktemp("symbolize-binutils"))


ALL = ["c-pie", "c-nopie", "c-lib", "c-lib-shifted", "cpp", "rust-v0", "rust-legacy",
       "debuglink-samedir", "debuglink-dotdebug", "debuglink-debugdir", "debuglink-badcrc",
       "build-id", "mini-lib", "mini-exe"]


def _cut(x, n: int = 160) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


def _report(key: str, bad: list, total: int) -> str:
    lines = [f"  vaddr={v} offset={o} expected={_cut(w)} got={_cut(g)}" for v, o, w, g in bad[:25]]
    return f"{key}: {len(bad)} of {total} probes disagree with binutils:\n" + "\n".join(lines)


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("key", ALL)
def test_frame_names_equal_binutils(shapes, key):
    sh = shapes.get(key)
    names = {s.name for s in sh.syms}
    if key.startswith(("c-", "debuglink", "build-id", "mini")):
        assert C_FUNCS <= {p.name for p in sh.probes}, "the oracle lost functions"
    elif key == "cpp":
        assert CPP_FUNCS <= {p.name for p in sh.probes}, CPP_FUNCS - names
    else:
        assert len(sh.probes) > 300 and any("shapes::Acc" in p.name for p in sh.probes)
    offsets = [p.offset for p in sh.probes]
    got = name_offsets(str(sh.path), offsets, debug_dirs=sh.debug_dirs)
    assert len(got) == len(offsets)
    bad = [(hex(p.vaddr), hex(p.offset), sh.expect(p)[0], g)
           for p, g in zip(sh.probes, got) if g != sh.expect(p)[0]]
    assert not bad, _report(key, bad, len(offsets))


@pytest.mark.parametrize("key", ALL)
def test_raw_names_and_their_source(shapes, key):
    sh = shapes.get(key)
    obj = load_object(str(sh.path), debug_dirs=sh.debug_dirs)
    bad = []
    sources = collections.Counter()
    for p in sh.probes:
        name, source = sh.expect(p)
        raw, src = obj.name_at(p.offset), obj.source_at(p.offset)
        sources[src] += 1
        ok = (raw is None and src is None) if source is None else (raw in p.raws and src == source)
        if not ok:
            want = None if source is None else "|".join(sorted(p.raws))
            bad.append((hex(p.vaddr), hex(p.offset), (want, source), (raw, src)))
    assert not bad, _report(key, bad, len(sh.probes))
    # Each stripped shape really exercised the source it is about.
    want_sources = {"debuglink-badcrc": {"dynsym", None}, "mini-lib": {"dynsym", "minidebuginfo"},
                    "mini-exe": {"minidebuginfo"}, "build-id": {"build-id"}}
    want = want_sources.get(key, {"debuglink"} if key.startswith("debuglink") else {"symtab"})
    assert set(sources) == want, sources


def test_minidebuginfo_names_static_functions(shapes):
    sh = shapes.get("mini-lib")
    by_name = {p.name: p for p in sh.probes if p.vaddr in {s.vaddr for s in sh.syms}}
    obj = load_object(str(sh.path), debug_dirs=sh.debug_dirs)
    assert obj.source_at(by_name["local_7"].offset) == "minidebuginfo"
    assert obj.name_at(by_name["local_7"].offset) == "local_7"
    assert obj.source_at(by_name["exported_7"].offset) == "dynsym"


def test_stale_debuglink_is_not_used(shapes):
    """CRC mismatch: static functions are `module+0xOFFSET`, exported ones
    come from .dynsym, never from the stale debug file."""
    sh = shapes.get("debuglink-badcrc")
    starts = {s.name: s for s in sh.syms}
    segs = load_segments(sh.path)
    offs = [file_offset(segs, starts[n].vaddr) for n in ("local_3", "exported_3", "internal_global")]
    assert name_offsets(str(sh.path), offs, debug_dirs=sh.debug_dirs) == [
        module_of(sh.path, offs[0]), "exported_3", module_of(sh.path, offs[2])]


ALIAS_SHAPES = ["c-pie", "c-nopie", "c-lib", "c-lib-shifted", "debuglink-samedir",
                "debuglink-dotdebug", "debuglink-debugdir", "debuglink-badcrc", "build-id",
                "mini-exe", "mini-lib"]


@pytest.mark.parametrize("key", ALIAS_SHAPES)
def test_alias_global_name_wins_over_local(shapes, key):
    """One address, a local and a global (or weak) name: the global one,
    whatever the table order and wherever each name comes from (in mini-lib
    the global is in .dynsym, the local in MiniDebugInfo)."""
    sh = shapes.get(key)
    segs = load_segments(sh.path)
    syms = {s.raw: s for s in sh.syms}
    visible = sh.visible
    obj = load_object(str(sh.path), debug_dirs=sh.debug_dirs)
    checked = 0
    for local, glob in ALIAS_PAIRS:
        loc, g = syms[local], syms[glob]
        assert (loc.vaddr, loc.size, loc.kind.islower()) == (g.vaddr, g.size, True)
        assert g.kind in ("T", "W")
        assert {loc.name, glob} <= sh.ambiguous[loc.vaddr]
        if visible is not None and glob not in visible:
            want = local if local in visible else None  # only the local name is anywhere
        else:
            want = glob
        offs = [file_offset(segs, v) for v in (g.vaddr, g.vaddr + g.size // 2, g.vaddr + g.size - 1)]
        got = name_offsets(str(sh.path), offs, debug_dirs=sh.debug_dirs)
        assert got == [want or module_of(sh.path, o) for o in offs], (key, glob)
        assert [obj.name_at(o) for o in offs] == [want] * 3, (key, glob)
        checked += want == glob
    assert checked >= 1


# ------------------------------------------------------------------ malformed


def _malformed(good: bytes, how: str) -> bytes | None:
    rng = random.Random(how)
    e_shoff = struct.unpack_from("<Q", good, 0x28)[0]
    e_shentsize, e_shnum = struct.unpack_from("<HH", good, 0x3A)
    if how == "truncated-header":
        return good[:64]
    if how == "truncated-half":
        return good[: len(good) // 2]
    if how == "truncated-in-section-headers":
        return good[: e_shoff + e_shentsize * e_shnum // 2]
    if how == "garbage-section-headers":
        data = bytearray(good)
        n = e_shentsize * e_shnum
        data[e_shoff:e_shoff + n] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(data)
    if how == "shoff-past-end":
        data = bytearray(good)
        struct.pack_into("<Q", data, 0x28, len(good) + 0x1000)
        return bytes(data)
    if how == "garbage-after-ident":
        return good[:16] + bytes(rng.randrange(256) for _ in range(len(good) - 16))
    if how == "empty":
        return b""
    if how == "text":
        return b"#!/bin/sh\necho this is not an ELF file\n" * 100
    if how == "missing":
        return None
    raise AssertionError(how)


MALFORMED = ["truncated-header", "truncated-half", "truncated-in-section-headers",
             "garbage-section-headers", "shoff-past-end", "garbage-after-ident", "empty",
             "text", "missing"]
NOTHING_READABLE = {"truncated-header", "empty", "text", "missing"}


@pytest.mark.parametrize("how", MALFORMED)
def test_malformed_files_never_raise(shapes, how, tmp_path):
    sh = shapes.get("c-lib")
    good = sh.path.read_bytes()
    path = tmp_path / f"{how}.so"
    data = _malformed(good, how)
    if data is not None:
        path.write_bytes(data)
    # Every function's probes, the ambiguous ones too, and offsets past the end.
    segs = load_segments(sh.path)
    probes = [(p.offset, {p.name}) for p in sh.probes]
    probes += [(file_offset(segs, v), names) for v, names in sh.ambiguous.items()]
    probes += [(len(good) + 5, set()), (0, set()), (2**40, set())]
    debug_dirs = (str(tmp_path / "no-debug"),)
    obj = load_object(str(path), debug_dirs=debug_dirs)
    for off, _ in probes:
        raw, src = obj.name_at(off), obj.source_at(off)
        assert raw is None or isinstance(raw, str)
        assert src in (None, "symtab", "build-id", "debuglink", "minidebuginfo", "dynsym")
    got = name_offsets(str(path), [off for off, _ in probes], debug_dirs=debug_dirs)
    assert len(got) == len(probes)
    bad = []
    for (off, names), g in zip(probes, got):
        if g == module_of(path, off):
            continue
        if how in NOTHING_READABLE or g not in names:
            bad.append((hex(off), names, g))
    assert not bad, f"{how}: {bad[:20]}"
