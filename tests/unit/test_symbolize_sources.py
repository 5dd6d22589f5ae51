"""The symbolizer's parts: symbol-table rules, the caches, JIT perf maps, the
vDSO, hidden kernel addresses. (Agreement with binutils on binaries of every
shape is tests/unit/test_symbolize_binutils.py.)"""
import os
import shutil
import struct
import subprocess

import pytest

from conftest import require

from profiler.model.maps import MapEntry, parse_maps
from profiler.model.raw import MapsSnapshot, ProcessInfo, RawProfile, RecordingInfo
from profiler.binary import cache as cachemod
from profiler.symbolize import perfmap
from profiler.binary import symtab
from profiler.binary.cache import SymbolCache
from profiler.symbolize.kallsyms import parse_kallsyms
from profiler.symbolize.objfile import load_object, object_from_bytes
from profiler.symbolize.symbolizer import Symbolizer
from profiler.symbolize.vdso import read_vdso

GLOBAL_FUNC, WEAK_FUNC, LOCAL_FUNC = 0x12, 0x22, 0x02
LOCAL_OBJECT = 0x01


def strtab(*names):
    data, offsets = b"\0", {}
    for n in names:
        offsets[n] = len(data)
        data += n.encode() + b"\0"
    return data, offsets


def table(rows, section_ends=None):
    """rows: (name, info, value, size); section 1 holds everything."""
    data, off = strtab(*(r[0] for r in rows))
    return symtab.build([(off[n], info, 1, value, size) for n, info, value, size in rows],
                        data, section_ends or {1: 0x10000})


# ------------------------------------------------------------------ symtab rules

def test_address_must_lie_inside_the_symbol():
    t = table([("a", GLOBAL_FUNC, 0x1000, 0x10), ("b", GLOBAL_FUNC, 0x2000, 0x10)])
    assert t.lookup(0x1000) == ("a", 0)
    assert t.lookup(0x100F) == ("a", 0xF)
    assert t.lookup(0x1010) is None  # past a's end, before b: padding, not a
    assert t.lookup(0xFFF) is None


def test_zero_size_symbol_reaches_only_the_next_symbol():
    t = table([("asm_entry", GLOBAL_FUNC, 0x1000, 0), ("next", GLOBAL_FUNC, 0x1100, 0x10)],
              {1: 0x2000})
    assert t.lookup(0x10FF) == ("asm_entry", 0xFF)
    assert t.lookup(0x1100) == ("next", 0)
    last = table([("tail", GLOBAL_FUNC, 0x1000, 0)], {1: 0x1040})
    assert last.lookup(0x103F) == ("tail", 0x3F)
    assert last.lookup(0x1040) is None  # the section ends there


def test_global_beats_weak_beats_local_alias_whatever_the_order():
    rows = [("__GI_memcpy", LOCAL_FUNC, 0x1000, 0x40), ("memcpy", GLOBAL_FUNC, 0x1000, 0x40),
            ("memcpy_weak", WEAK_FUNC, 0x1000, 0x40)]
    for order in (rows, rows[::-1], rows[1:] + rows[:1]):
        assert table(order).lookup(0x1010) == ("memcpy", 0x10)
    assert table([rows[0], rows[2]]).lookup(0x1000)[0] == "memcpy_weak"


def test_equal_aliases_the_later_entry_wins():
    rows = [("zeta", GLOBAL_FUNC, 0x1000, 0x40), ("alpha", GLOBAL_FUNC, 0x1000, 0x40)]
    assert table(rows).lookup(0x1000)[0] == "alpha"
    assert table(rows[::-1]).lookup(0x1000)[0] == "zeta"


def test_symbol_versions_are_not_part_of_the_name():
    t = table([("pthread_cond_signal@@GLIBC_2.3.2", GLOBAL_FUNC, 0x1000, 0x40),
               ("memcpy@GLIBC_2.2.5", GLOBAL_FUNC, 0x2000, 0x40),
               ("@odd", GLOBAL_FUNC, 0x3000, 0x40)])
    assert [t.lookup(a)[0] for a in (0x1000, 0x2000, 0x3000)] == \
        ["pthread_cond_signal", "memcpy", "@odd"]


def test_objects_undefined_and_absolute_symbols_are_skipped():
    data, off = strtab("obj", "undef", "abs", "f")
    t = symtab.build([(off["obj"], LOCAL_OBJECT, 1, 0x1000, 0x100),
                      (off["undef"], GLOBAL_FUNC, 0, 0x1000, 0x100),
                      (off["abs"], GLOBAL_FUNC, 0xFFF1, 0x1000, 0x100),
                      (off["f"], GLOBAL_FUNC, 1, 0x3000, 0x10)], data, {1: 0x4000})
    assert len(t) == 1 and t.lookup(0x1000) is None and t.lookup(0x3000) == ("f", 0)


def test_table_bytes_round_trip_and_reject_damage():
    t = table([("a", GLOBAL_FUNC, 0x1000, 0x10), ("b", LOCAL_FUNC, 0x2000, 0)])
    back = symtab.SymbolTable.from_bytes(t.to_bytes())
    assert [back.lookup(a) for a in (0x1005, 0x2005, 0x900)] == \
        [t.lookup(a) for a in (0x1005, 0x2005, 0x900)]
    for bad in (b"", b"PSYMTAB1", t.to_bytes()[:-1], b"X" + t.to_bytes()[1:]):
        with pytest.raises(ValueError):
            symtab.SymbolTable.from_bytes(bad)


# ------------------------------------------------------------------ caches

@pytest.fixture(scope="module")
def small_binary(tmp_path_factory):
    require(shutil.which("gcc") is not None, "needs gcc")
    d = tmp_path_factory.mktemp("cache")
    (d / "t.c").write_text("__attribute__((noinline)) int work(int x){return x*7;}\n"
                           "int main(int c,char**v){return work(c);}\n")
    subprocess.run(["gcc", "-O1", "-Wl,--build-id", "-o", str(d / "t"), str(d / "t.c")],
                   check=True)
    nm = subprocess.run(["nm", str(d / "t")], capture_output=True, text=True).stdout
    work = next(int(l.split()[0], 16) for l in nm.splitlines() if l.endswith(" work"))
    return str(d / "t"), work  # a PIE's vaddrs equal its file offsets in the text segment


def test_disk_cache_serves_a_new_process_and_ignores_damage(small_binary, tmp_path):
    path, work = small_binary
    first = SymbolCache(str(tmp_path))
    assert load_object(path, cache=first).name_at(work) == "work"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and f".image-{os.path.getsize(path)}-" in files[0].name
    # A fresh cache (another run) reads the tables back from disk.
    assert load_object(path, cache=SymbolCache(str(tmp_path))).name_at(work) == "work"
    # A damaged entry is ignored, the file parsed again and the entry rewritten.
    files[0].write_bytes(b"\xff" * 40)
    assert load_object(path, cache=SymbolCache(str(tmp_path))).name_at(work) == "work"
    assert SymbolCache(str(tmp_path)).load(
        bytes.fromhex(files[0].parent.name + files[0].name.split(".")[0]),
        files[0].name.split(".", 1)[1]) is not None


def test_disk_cache_really_is_used(small_binary, tmp_path):
    """Plant a different table under the file's build-id: a warm load must
    answer from the cache, not from the file (else the cache does nothing)."""
    path, work = small_binary
    load_object(path, cache=SymbolCache(str(tmp_path)))
    entry = next(p for p in tmp_path.rglob("*.image-*"))
    build_id = bytes.fromhex(entry.parent.name + entry.name.split(".")[0])
    planted = table([("planted", GLOBAL_FUNC, work, 4)])
    SymbolCache(str(tmp_path)).save(build_id, entry.name.split(".", 1)[1],
                                    {"debuglink": None}, {"symtab": planted})
    assert load_object(path, cache=SymbolCache(str(tmp_path))).name_at(work) == "planted"


def test_memory_cache_is_keyed_by_file_identity(small_binary, tmp_path):
    path, work = small_binary
    copy = tmp_path / "t"
    shutil.copy(path, copy)
    cache = SymbolCache(None)
    a = load_object(str(copy), cache=cache)
    assert load_object(str(copy), cache=cache) is a
    os.utime(copy, ns=(1, 1))  # a rewritten file (new mtime) is read again
    assert load_object(str(copy), cache=cache) is not a


def test_unreadable_cache_directory_only_costs_speed(small_binary, tmp_path):
    path, work = small_binary
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert load_object(path, cache=SymbolCache(str(blocker / "sub"))).name_at(work) == "work"


def test_default_cache_lives_under_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cachemod.default_directory() == str(tmp_path / "profiler" / "symbols")


# ------------------------------------------------------------------ perf maps

def test_perf_map_parse_later_lines_win_and_garbage_is_skipped():
    text = ("7f0000001000 40 LazyCompile:~old a.js:1\n"
            "garbage line\n"
            "zz 10 bad hex\n"
            "7f0000002000 0 zero size\n"
            "7f0000001000 40 LazyCompile:*new a.js:1\n"
            "0x7f0000003000 0x20 Interpreted: name with spaces; and semicolon\n")
    m = perfmap.parse_perf_map(text)
    assert m.lookup(0x7F0000001010) == "LazyCompile:*new a.js:1"
    assert m.lookup(0x7F0000001040) is None
    assert m.lookup(0x7F0000002000) is None
    assert m.lookup(0x7F000000301F) == "Interpreted: name with spaces; and semicolon"
    assert len(m) == 2


def test_perf_map_overlapping_entries_the_latest_covers():
    m = perfmap.parse_perf_map("1050 10 old_small\n1000 100 new_big\n1080 8 newest\n")
    assert [m.lookup(a) for a in (0x1000, 0x1055, 0x1070, 0x1084, 0x1090, 0x1100)] == \
        ["new_big", "new_big", "new_big", "newest", "new_big", None]
    m = perfmap.parse_perf_map("1000 100 first\n1040 10 inner\n")
    assert [m.lookup(a) for a in (0x103F, 0x1040, 0x104F, 0x1050)] == \
        ["first", "inner", "inner", "first"]


def test_perf_map_reading_is_capped(tmp_path):
    path = tmp_path / "perf.map"
    path.write_text("".join(f"{0x1000 + 0x10 * i:x} 10 f{i}\n" for i in range(1000)))
    fd = os.open(path, os.O_RDONLY)
    try:
        whole, dropped = perfmap.read_fd(fd)
        assert len(whole) == 1000 and not dropped
        part, dropped = perfmap.read_fd(fd, budget=100 * perfmap.ENTRY_COST)
        assert 90 < len(part) < 100 and len(part) + dropped == 1000  # counted, not kept
        assert part.lookup(0x1000) == "f0" and part.lookup(0x1000 + 0x10 * 100) is None
    finally:
        os.close(fd)


def _planted_map(pid: int) -> str:
    path = f"/tmp/perf-{perfmap.namespace_pid(pid)}.map"
    require(not os.path.lexists(path), f"{path} exists already (left by another run)")
    return path


def test_perf_map_that_is_a_symlink_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("1000 10 via_link\n")
    path = _planted_map(os.getpid())
    os.symlink(target, path)
    try:
        with pytest.raises(perfmap.PerfMapRefused, match="symbolic link"):
            perfmap.open_perf_map(os.getpid())
    finally:
        os.unlink(path)


def test_perf_map_owned_by_someone_else_is_refused(tmp_path, monkeypatch):
    require(os.geteuid() == 0, "needs root to give the file away")
    pid = os.getpid()
    path = _planted_map(pid)
    try:
        with open(path, "w") as f:
            f.write("1000 10 evil\n")
        fd = perfmap.open_perf_map(pid)
        assert fd is not None and perfmap.read_fd(fd)[0].lookup(0x1005) == "evil"
        os.close(fd)
        os.chown(path, 65534, 65534)
        with pytest.raises(perfmap.PerfMapRefused, match="owned by uid 65534"):
            perfmap.open_perf_map(pid)
    finally:
        os.unlink(path)
    assert perfmap.open_perf_map(pid) is None


# ------------------------------------------------------------------ vDSO, JIT, kernel

def _profile(entries=(), jit=None, pid=7, vdso=None):
    return RawProfile(
        info=RecordingInfo(target="t", event="cpu-clock", event_type=1, event_config=0,
                           frequency=99, period=None, duration=1.0, cpus=(0,), sides="both",
                           per_thread=False, started=0.0),
        counts=(), stacks={},
        processes={pid: ProcessInfo(pid=pid, vdso="v1" if vdso else "",
                                    snapshots=(MapsSnapshot(time=0, entries=tuple(entries)),))},
        stats={}, jit=jit or {}, vdso_images={"v1": vdso} if vdso else {})


def _own_vdso():
    with open("/proc/self/maps") as f:
        entry = next(e for e in parse_maps(f.read()) if e.path == "[vdso]")
    return read_vdso(os.getpid(), entry)


def test_vdso_functions_are_named_from_the_image():
    image = _own_vdso()
    assert image and image[:4] == b"\x7fELF"
    obj = object_from_bytes(image, "[vdso]")
    names = {obj.name_at(o) for o in range(0, len(image), 4)} - {None}
    assert "__vdso_clock_gettime" in names and "clock_gettime" not in names  # global over weak


def test_vdso_frame_through_the_symbolizer():
    """Named from the image the profile carries, never from our own: a
    profile from another kernel, or of a 32-bit process, has another."""
    image = _own_vdso()
    obj = object_from_bytes(image, "[vdso]")
    offset = next(o for o in range(len(image)) if obj.name_at(o) == "__vdso_clock_gettime")
    vdso = MapEntry(start=0x7FFF0000, end=0x7FFF2000, perms="r-xp", offset=0, dev="00:00",
                    inode=0, path="[vdso]")
    profile = _profile([vdso], vdso=image)
    sym = Symbolizer(RawProfile.from_json(profile.to_json()), cache=SymbolCache(None))
    assert sym.user_frame(7, 0x7FFF0000 + offset, leaf=True).name == "__vdso_clock_gettime"
    without = Symbolizer(_profile([vdso]), cache=SymbolCache(None))
    frame = without.user_frame(7, 0x7FFF0000 + offset, leaf=True)
    assert frame == (f"[vdso]+0x{offset:x}", False, False)


def test_jit_frames_get_the_jit_suffix_and_file_frames_do_not():
    anon = MapEntry(start=0x10000, end=0x20000, perms="r-xp", offset=0, dev="00:00",
                    inode=0, path="")
    jit = {7: ((0x11000, 0x100, "JS:*hot a.js:1"), (0x200000, 0x40, "JS:late b.js:9"))}
    sym = Symbolizer(_profile([anon], jit=jit), cache=SymbolCache(None))
    assert sym.user_frame(7, 0x11010, leaf=True).name == "JS:*hot a.js:1_[j]"
    assert sym.user_frame(7, 0x11100, leaf=False).name == "JS:*hot a.js:1_[j]"  # return address
    assert sym.user_frame(7, 0x12000, leaf=True).name == "[anon]+0x2000"
    # JIT code outside every snapshot (mapped after the last one) is still named.
    assert sym.user_frame(7, 0x200010, leaf=True).name == "JS:late b.js:9_[j]"
    assert sym.user_frame(7, 0x300000, leaf=True).name == "[unmapped]+0x300000"


def test_hidden_kernel_addresses_give_one_warning_and_kernel_frames(monkeypatch):
    from profiler.symbolize import symbolizer
    monkeypatch.setattr(symbolizer, "load_kernel_symbols",
                        lambda cache: parse_kallsyms("0000000000000000 T do_syscall_64\n"))
    sym = Symbolizer(_profile(), cache=SymbolCache(None))
    frames = [sym.kernel_frame(0xFFFFFFFF81001234 + i, leaf=i == 0) for i in range(5)]
    assert {f.name for f in frames} == {"[kernel]"} and not any(f.resolved for f in frames)
    assert len(sym.warnings) == 1 and "kptr_restrict" in sym.warnings[0]


def test_raw_profile_keeps_jit_entries():
    p = _profile(jit={7: ((0x11000, 0x100, "JS:*hot a.js:1"),)})
    back = RawProfile.from_json(p.to_json())
    assert back.jit == {7: ((0x11000, 0x100, "JS:*hot a.js:1"),)}
    old = p.to_json().replace(',"jit":{"7":[[69632,256,"JS:*hot a.js:1"]]}', "")
    assert '"jit"' not in old and RawProfile.from_json(old).jit == {}


def test_a_cut_down_symtab_still_reaches_dynsym(tmp_path):
    """.dynsym is read only when .symtab may lack some of it: a .symtab with
    fewer entries than .dynsym (objcopy --strip-all --keep-symbol)."""
    require(shutil.which("gcc") is not None and shutil.which("objcopy") is not None,
            "needs gcc and objcopy")
    (tmp_path / "lib.c").write_text(
        "__attribute__((noinline)) static int hidden_helper(int x) { return x * 5 + 1; }\n"
        "int exported_one(int x) { return hidden_helper(x) + 2; }\n")
    full, cut = tmp_path / "lib.so", tmp_path / "cut.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(full), str(tmp_path / "lib.c")],
                   check=True)
    subprocess.run(["objcopy", "--strip-all", "--keep-symbol=hidden_helper", str(full), str(cut)],
                   check=True)
    nm = subprocess.run(["nm", str(full)], capture_output=True, text=True).stdout
    where = {f[2]: int(f[0], 16) for f in (l.split() for l in nm.splitlines()) if len(f) == 3}
    obj = load_object(str(cut))  # a shared library's vaddrs are its file offsets here
    assert (obj.name_at(where["hidden_helper"]), obj.source_at(where["hidden_helper"])) == \
        ("hidden_helper", "symtab")
    assert (obj.name_at(where["exported_one"]), obj.source_at(where["exported_one"])) == \
        ("exported_one", "dynsym")


# ------------------------------------------------------------------ hostile files

STRIPPED_SRC = ("__attribute__((noinline)) static int alpha(int x) { return x * 3 + 1; }\n"
                "int main(int c, char **v) { return alpha(c); }\n")


@pytest.fixture()
def stripped_with_link(tmp_path):
    """A stripped binary whose .gnu_debuglink names a.debug in its directory;
    returns (binary, alpha's file offset, where a.debug goes)."""
    require(shutil.which("gcc") is not None and shutil.which("objcopy") is not None,
            "needs gcc and objcopy")
    (tmp_path / "t.c").write_text(STRIPPED_SRC)
    full = tmp_path / "full"
    subprocess.run(["gcc", "-O1", "-Wl,--build-id=none", "-o", str(full), str(tmp_path / "t.c")],
                   check=True)
    nm = subprocess.run(["nm", str(full)], capture_output=True, text=True).stdout
    alpha = next(int(l.split()[0], 16) for l in nm.splitlines() if l.endswith(" alpha"))
    debug = tmp_path / "a.debug"
    subprocess.run(["objcopy", "--only-keep-debug", str(full), str(debug)], check=True)
    exe = tmp_path / "app"
    subprocess.run(["objcopy", "--strip-all", f"--add-gnu-debuglink={debug}", str(full), str(exe)],
                   check=True)
    return str(exe), alpha, debug  # a PIE: alpha's vaddr is its file offset


def _within(seconds, fn):
    import signal

    def alarm(*_):
        raise TimeoutError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_debuglink_file_as_fifo_or_device_never_hangs(stripped_with_link):
    exe, alpha, debug = stripped_with_link
    assert load_object(exe).name_at(alpha) == "alpha"  # the real debug file works
    debug.unlink()
    os.mkfifo(debug)
    assert _within(10, lambda: load_object(exe).name_at(alpha)) is None
    debug.unlink()
    os.symlink("/dev/zero", debug)
    assert _within(10, lambda: load_object(exe).name_at(alpha)) is None


def test_symbol_sizes_past_the_address_space_do_not_stop_anything(tmp_path):
    """A symbol entry rewritten to end past 2**64 (st_value near the top,
    a large st_size): the file loads, and its other symbols still name."""
    require(shutil.which("gcc") is not None, "needs gcc")
    (tmp_path / "t.c").write_text(STRIPPED_SRC.replace("static ", ""))
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(tmp_path / "t.c")], check=True)
    from elftools.elf.elffile import ELFFile
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        symtab_sec = elf.get_section_by_name(".symtab")
        index = next(i for i, s in enumerate(symtab_sec.iter_symbols()) if s.name == "alpha")
        at = symtab_sec["sh_offset"] + index * symtab_sec["sh_entsize"]
        main = next(s["st_value"] for s in symtab_sec.iter_symbols() if s.name == "main")
    data = bytearray(exe.read_bytes())
    data[at + 8:at + 24] = struct.pack("<QQ", 0xFFFFFFFFFFFFFF00, 0x1000)
    exe.write_bytes(bytes(data))
    obj = load_object(str(exe))
    assert obj.name_at(main) == "main"
    assert obj.name_at(0xFFFFFFFFFFFFFF10) is None  # outside every segment


def test_default_cache_directory_must_be_ours(tmp_path, monkeypatch):
    require(os.geteuid() == 0, "needs root to give a directory away")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    monkeypatch.setenv("XDG_CACHE_HOME", str(theirs))
    chosen = cachemod.default_directory()
    assert chosen is None or not chosen.startswith(str(theirs))
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    chosen = cachemod.default_directory()
    assert chosen is None or not chosen.startswith(str(shared))


def test_cache_entries_of_files_others_can_write_are_never_stored(small_binary, tmp_path):
    path, work = small_binary
    copy = tmp_path / "t"
    shutil.copy(path, copy)
    os.chmod(copy, 0o777)
    cache_dir = tmp_path / "cache"
    assert load_object(str(copy), cache=SymbolCache(str(cache_dir))).name_at(work) == "work"
    assert not any(p.is_file() for p in cache_dir.rglob("*"))


def test_saved_profile_never_reads_another_file_at_the_path(small_binary, tmp_path):
    """A deploy replaced the binary after the recording: the path now names
    other code, whose names would be wrong. The inode tells."""
    path, work = small_binary
    exe = tmp_path / "service"
    shutil.copy(path, exe)
    inode = os.stat(exe).st_ino
    entry = MapEntry(start=0x555500000000, end=0x555500100000, perms="r-xp", offset=0,
                     dev="00:00", inode=inode, path=str(exe))
    right = Symbolizer(_profile([entry]), cache=SymbolCache(None))
    assert right.user_frame(7, 0x555500000000 + work, leaf=True).name == "work"
    (tmp_path / "other.c").write_text("int other_main(void){return 0;}\nint main(){return 0;}\n")
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "new"), str(tmp_path / "other.c")],
                   check=True)
    os.rename(tmp_path / "new", exe)
    replaced = Symbolizer(_profile([entry]), cache=SymbolCache(None))
    frame = replaced.user_frame(7, 0x555500000000 + work, leaf=True)
    assert frame == (f"service+0x{work:x}", False, False)


def test_kept_perf_map_is_read_at_the_end_and_only_used_entries_are_saved(tmp_path):
    """FileKeeper opens the map while the process runs and reads it when
    asked, late lines included; the profile keeps the entries it needs."""
    from profiler.record.procwatch import FileKeeper
    from profiler.model.raw import CountRecord
    from profiler.record.recorder import _jit_entries
    pid = os.getpid()
    path = _planted_map(pid)
    keeper = FileKeeper()
    try:
        with open(path, "w") as f:
            f.write("1000 100 early\n")
        keeper.keep_perf_map(pid)
        with open(path, "a") as f:
            f.write("2000 100 late\n3000 100 unused\n")
        maps = keeper.perf_maps()
        assert [maps[pid].lookup(a) for a in (0x1010, 0x2010, 0x3010)] == ["early", "late", "unused"]
        records = (CountRecord(pid=pid, tid=0, comm="x", user_stack=1, kernel_stack=0, count=3),)
        stacks = {1: (0x2000, 0x1001)}  # leaf first: 0x2000 itself, 0x1001 as a return address
        assert _jit_entries(records, stacks, maps) == \
            {pid: ((0x1000, 0x100, "early"), (0x2000, 0x100, "late"))}
    finally:
        keeper.close()
        os.unlink(path)
