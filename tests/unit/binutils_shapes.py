"""Binaries in every shape a profiler meets, built with the system's
compilers, and binutils' names for their functions: the oracle that
test_symbolize_binutils checks the symbolizer against."""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Callable

import pytest

from conftest import require

SRC = Path(__file__).with_name("symbolize_shapes")
# -fno-inline: addr2line without -i names the innermost inlined function, the
# symbol table the enclosing one; -fno-ipa-icf: identical functions folded into
# one would be aliases, whose choice is arbitrary for the oracle.
CFLAGS = ["-O1", "-g", "-fno-inline", "-fno-ipa-icf", "-fno-omit-frame-pointer"]
RUSTFLAGS = ["-C", "force-frame-pointers=yes", "-C", "opt-level=1"]
FUNC_TYPES = frozenset("TtWwi")
RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
LEGACY_RUST = re.compile(r"^_ZN.*17h[0-9a-f]{16}E$")
LOAD = re.compile(r"^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)", re.M)

# The aliases in shapes.c: (local name, global or weak name at its address).
ALIAS_PAIRS = (("hidden_impl", "public_name"), ("weak_impl", "weak_name"))
C_FUNCS = {f"{kind}_{n}" for kind in ("local", "exported") for n in range(1, 17)} | {
    "internal_global", "run_all"}
CPP_FUNCS = {"outer::inner::twice(int)", "outer::inner::twice(double)",
             "outer::inner::twice(long, char const*)", "outer::Accumulator<int>::add(int)",
             "outer::Accumulator<double>::make()", "int outer::scaled<int, 3>(int)",
             "long outer::scaled<long, 7>(long)", "(anonymous namespace)::anonymous_helper(int)",
             "Shape::area() const", "Shape::operator()(int) const", "Shape::~Shape()",
             "file_static(int)", "main", "takes_streams(std::ostream*, std::string*)"}


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    require(not missing, "needs " + ", ".join(missing))


def _run(cmd, cwd=None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed:\n{done.stderr}")
    return done.stdout


def _sh(script: str, cwd: Path) -> None:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{script} failed:\n{done.stderr}")


def module_of(path: Path | str, offset: int) -> str:
    return f"{os.path.basename(path)}+0x{offset:x}"


# ------------------------------------------------------------------ oracle


@dataclasses.dataclass(frozen=True)
class Sym:
    vaddr: int
    size: int
    kind: str  # nm's letter
    raw: str  # as in the symbol table
    name: str  # nm -C


@dataclasses.dataclass(frozen=True)
class Probe:
    vaddr: int
    offset: int  # in the file, computed from readelf's PT_LOAD headers
    name: str  # the oracle's (demangled) name
    raws: frozenset[str]  # the raw symbol names covering the address (same demangled name)


def function_symbols(path: Path, dynamic: bool = False) -> list[Sym]:
    """Defined function symbols with a size, in table order, raw and demangled."""
    args = ["nm", "-p", "-S", "--defined-only"] + (["-D"] if dynamic else [])
    raw = _run(args + [path]).splitlines()
    dem = _run(args + ["-C", path]).splitlines()
    assert len(raw) == len(dem)
    out = []
    for r, d in zip(raw, dem):
        rp, dp = r.split(None, 3), d.split(None, 3)
        if len(rp) != 4 or rp[2] not in FUNC_TYPES or int(rp[1], 16) == 0:
            continue  # no size column (3 fields), not a function, or size 0
        assert rp[:3] == dp[:3], (r, d)
        out.append(Sym(int(rp[0], 16), int(rp[1], 16), rp[2], rp[3].split("@")[0], dp[3]))
    return out


def load_segments(path: Path) -> list[tuple[int, int, int]]:
    """(p_offset, p_vaddr, p_filesz) of every PT_LOAD, from readelf."""
    segs = [(int(o, 16), int(v, 16), int(s, 16)) for o, v, s in LOAD.findall(_run(["readelf", "-lW", path]))]
    assert segs, f"no PT_LOAD in {path}"
    return segs


def file_offset(segs, vaddr: int) -> int:
    for off, va, filesz in segs:
        if va <= vaddr < va + filesz:
            return vaddr - va + off
    raise AssertionError(f"0x{vaddr:x} is in no PT_LOAD segment")


def addr2line(path: Path, vaddrs: list[int]) -> list[str]:
    if not vaddrs:
        return []
    out = _run(["addr2line", "-f", "-C", "-e", path] + [f"0x{v:x}" for v in vaddrs]).splitlines()
    assert len(out) == 2 * len(vaddrs)
    return out[0::2]  # function name lines; the others are file:line


def _oracle(unstripped: Path, *, rust: bool) -> tuple[list[Probe], dict[int, set[str]], list[Sym]]:
    """Probes (start, middle, last byte of every function) with the oracle's
    names, and the ambiguous addresses (covered by functions with different
    names: aliases, where addr2line's choice is arbitrary) left out of them."""
    syms = function_symbols(unstripped)
    segs = load_segments(unstripped)
    starts = sorted({s.vaddr for s in syms})
    probes_at = sorted({v for s in syms for v in (s.vaddr, s.vaddr + s.size // 2, s.vaddr + s.size - 1)})
    by_start = collections.defaultdict(list)
    for s in syms:
        by_start[s.vaddr].append(s)
    longest = max(s.size for s in syms)
    covering = {}
    for v in probes_at:  # every symbol whose [start, start+size) holds v
        cands = [s for a in starts if v - longest < a <= v for s in by_start[a] if v < a + s.size]
        covering[v] = cands
    ambiguous = {v: {s.name for s in c} for v, c in covering.items() if len({s.name for s in c}) > 1}
    clear = [v for v in probes_at if v not in ambiguous]
    if rust:
        # Rust: std is precompiled with inlining and ships DWARF for it, so
        # addr2line (without -i) names the innermost *inlined* function for
        # about a third of the addresses (core::ptr::drop_in_place::<..>
        # inside the function whose symbol holds the address, say), while a
        # profile frame is the out-of-line function: the symbol table is the
        # oracle, `nm -C`. Its legacy names are normalised by exactly one
        # thing, the `::h<16 hex>` hash the symbolizer drops on purpose
        # (binutils 2.40's nm -C already omits it; c++filt shows it).
        names = [RUST_HASH.sub("", covering[v][0].name) for v in clear]
    else:
        names = addr2line(unstripped, clear)
        # addr2line's DWARF answer must agree with the symbol table, or the
        # fixture was built wrong (inlining, cloning): a broken oracle.
        wrong = [(hex(v), n, covering[v][0].name) for v, n in zip(clear, names) if n != covering[v][0].name]
        assert not wrong, f"addr2line and nm -C disagree in {unstripped}: {wrong[:10]}"
    probes = [Probe(v, file_offset(segs, v), n, frozenset(s.raw for s in covering[v]))
              for v, n in zip(clear, names)]
    return probes, ambiguous, syms


# ------------------------------------------------------------------ shapes


@dataclasses.dataclass
class Shape:
    key: str
    path: Path  # the file under test
    unstripped: Path
    debug_dirs: tuple[str, ...]
    probes: list[Probe]
    ambiguous: dict[int, set[str]]
    syms: list[Sym]
    source: Callable[[Probe], str]  # which source must name a probe
    visible: frozenset[str] | None = None  # raw names any source has; None: all

    def expect(self, p: Probe) -> tuple[str, str | None]:
        """(frame name, source) the symbolizer must give for a probe."""
        if self.visible is not None and not p.raws & self.visible:
            return module_of(self.path, p.offset), None
        return p.name, self.source(p)


def _has_section(path: Path, name: str) -> bool:
    return any(line.split()[1:2] == [name] or f" {name} " in line
               for line in _run(["readelf", "-SW", path]).splitlines())


def _debuglink_crc(path: Path, work: Path) -> int:
    out = work / "debuglink.section"
    _run(["objcopy", "--dump-section", f".gnu_debuglink={out}", path, work / "scratch.o"])
    data = out.read_bytes()
    name_end = data.index(b"\0")
    crc_at = (name_end + 4) // 4 * 4
    return struct.unpack_from("<I", data, crc_at)[0]


def _build_id(path: Path) -> str:
    m = re.search(r"Build ID: ([0-9a-f]+)", _run(["readelf", "-n", path]))
    assert m, f"no build-id in {path}"
    return m.group(1)


def _dynsym_functions(path: Path) -> frozenset[str]:
    return frozenset(s.raw for s in function_symbols(path, dynamic=True))


class Builder:
    """Builds each shape once, on first use, in one temporary tree."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.cache: dict[str, Shape] = {}
        self.builds: dict[str, Path] = {}

    def get(self, key: str) -> Shape:
        if key not in self.cache:
            self.cache[key] = getattr(self, "_" + key.replace("-", "_"))(key)
        return self.cache[key]

    def _dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _shape(self, key, path, unstripped, source="symtab", *, rust=False, debug_root=None,
               visible=None) -> Shape:
        probes, ambiguous, syms = _oracle(unstripped, rust=rust)
        assert load_segments(path) == load_segments(unstripped)
        debug_root = debug_root or self._dir(f"{key}.debugroot")  # empty: no system debug files
        src = source if callable(source) else (lambda p, s=source: s)
        return Shape(key, path, unstripped, (str(debug_root),), probes, ambiguous, syms, src, visible)

    # ---- compiled once, copied into shapes

    def _compile(self, name: str, cmd: list) -> Path:
        if name not in self.builds:
            out = self._dir("build") / name
            _run(cmd + ["-o", out])
            self.builds[name] = out
        return self.builds[name]

    def c_exe(self, pie: bool, build_id: str = "sha1") -> Path:
        need("gcc")
        flags = ["-fPIE", "-pie"] if pie else ["-fno-pie", "-no-pie"]
        return self._compile(f"shapes-{'pie' if pie else 'nopie'}-{build_id}",
                             ["gcc", *CFLAGS, *flags, f"-Wl,--build-id={build_id}", "-DWITH_MAIN",
                              SRC / "shapes.c"])

    def c_lib(self, extra=(), build_id: str = "sha1", tag: str = "") -> Path:
        need("gcc")
        return self._compile(f"libshapes{tag}-{build_id}.so",
                             ["gcc", *CFLAGS, "-shared", "-fPIC", f"-Wl,--build-id={build_id}", *extra,
                              SRC / "shapes.c"])

    def _stripped_copy(self, unstripped: Path, work: Path, name: str) -> tuple[Path, Path]:
        """work/name stripped of everything, and its full debug file work/name.debug."""
        need("objcopy", "strip")
        binary, debug = work / name, work / f"{name}.debug"
        shutil.copy(unstripped, binary)
        _run(["objcopy", "--only-keep-debug", binary, debug])
        _run(["strip", "--strip-all", binary])
        assert not _has_section(binary, ".symtab"), "strip left a .symtab"
        return binary, debug

    # ---- plain files: the own .symtab

    def _c_pie(self, key):
        exe = self.c_exe(pie=True)
        return self._shape(key, exe, exe)

    def _c_nopie(self, key):
        exe = self.c_exe(pie=False)
        assert any(off != va for off, va, _ in load_segments(exe)), "non-PIE text at vaddr == offset?"
        return self._shape(key, exe, exe)

    def _c_lib(self, key):
        lib = self.c_lib()
        return self._shape(key, lib, lib)

    def _c_lib_shifted(self, key):
        # Text at vaddr 0x201000, file offset 0x1000: offset != vaddr in a library.
        lib = self.c_lib(["-Wl,-Ttext-segment=0x200000"], tag="-shifted")
        assert all(off != va for off, va, _ in load_segments(lib))
        return self._shape(key, lib, lib)

    def _cpp(self, key):
        need("g++")
        exe = self._compile("shapes-cpp", ["g++", *CFLAGS, "-fPIE", "-pie", SRC / "shapes.cpp"])
        return self._shape(key, exe, exe)

    def _rust(self, key, mangling: str):
        need("rustc")
        out = self._dir("build") / key
        cmd = ["rustc", *RUSTFLAGS, "--crate-name", "shapes", SRC / "shapes.rs", "-o", out]
        done = subprocess.run([str(c) for c in cmd[:-2] + ["-C", f"symbol-mangling-version={mangling}"] + cmd[-2:]],
                              capture_output=True, text=True)
        if done.returncode != 0:
            # rustc 1.95 (stable): `-C symbol-mangling-version=legacy` needs
            # `-Z unstable-options`; legacy is the default for a crate's own
            # symbols, so build without the option (checked below).
            assert mangling == "legacy" and "unstable" in done.stderr, done.stderr
            _run(cmd)
        own = [s.raw for s in function_symbols(out) if "shapes" in s.raw and "Acc" in s.raw]
        assert own, "the crate's own functions are missing"
        if mangling == "legacy":
            assert all(LEGACY_RUST.match(r) for r in own), own
        else:
            assert all(r.startswith("_R") for r in own), own
        return self._shape(key, out, out, rust=True)

    def _rust_v0(self, key):
        return self._rust(key, "v0")

    def _rust_legacy(self, key):
        return self._rust(key, "legacy")

    # ---- stripped + .gnu_debuglink

    def _debuglink(self, key, where: str, crc_ok: bool = True):
        # No build-id, so nothing but the debuglink can lead to the debug file.
        lib = self.c_lib(build_id="none")
        work = self._dir(key + "/lib")
        binary, debug = self._stripped_copy(lib, work, "libshapes.so")
        _run(["objcopy", f"--add-gnu-debuglink={debug.name}", binary.name], cwd=work)
        crc = _debuglink_crc(binary, self._dir(key + "/tmp"))
        assert crc == zlib.crc32(debug.read_bytes())
        debug_root = self._dir(key + "/debugroot")
        if not crc_ok:
            with open(debug, "ab") as f:  # modified after the link was made
                f.write(b"\0rebuilt\0")
            assert zlib.crc32(debug.read_bytes()) != crc
            for d in (work / ".debug", debug_root / str(work).lstrip("/")):
                d.mkdir(parents=True)
                shutil.copy(debug, d / debug.name)
            dyn = _dynsym_functions(binary)
            return self._shape(key, binary, lib, "dynsym", debug_root=debug_root, visible=dyn)
        if where == ".debug":
            (work / ".debug").mkdir()
            debug.rename(work / ".debug" / debug.name)
        elif where == "debug_dir":
            target = debug_root / str(work).lstrip("/")
            target.mkdir(parents=True)
            debug.rename(target / debug.name)
        return self._shape(key, binary, lib, "debuglink", debug_root=debug_root)

    def _debuglink_samedir(self, key):
        return self._debuglink(key, "same")

    def _debuglink_dotdebug(self, key):
        return self._debuglink(key, ".debug")

    def _debuglink_debugdir(self, key):
        return self._debuglink(key, "debug_dir")

    def _debuglink_badcrc(self, key):
        return self._debuglink(key, "all", crc_ok=False)

    # ---- stripped + build-id

    def _build_id(self, key):
        exe = self.c_exe(pie=True)
        binary, debug = self._stripped_copy(exe, self._dir(key + "/bin"), "shapes")
        assert not _has_section(binary, ".gnu_debuglink")
        bid = _build_id(binary)
        assert bid == _build_id(debug)
        debug_root = self._dir(key + "/debugroot")
        target = debug_root / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
        target.parent.mkdir(parents=True)
        debug.rename(target)
        return self._shape(key, binary, exe, "build-id", debug_root=debug_root)

    # ---- stripped + MiniDebugInfo (the GDB manual's recipe)

    def _mini(self, key, unstripped: Path, name: str):
        need("objcopy", "strip", "xz", "nm")
        work = self._dir(key)
        binary = work / name
        shutil.copy(unstripped, binary)
        _sh(f"""
nm -D {name} --format=posix --defined-only | awk '{{ print $1 }}' | sort > dynsyms
nm {name} --format=posix --defined-only \
  | awk '{{ if ($2 == "T" || $2 == "t" || $2 == "D") print $1 }}' | sort > funcsyms
comm -13 dynsyms funcsyms > keep_symbols
objcopy --only-keep-debug {name} debug
objcopy -S --remove-section .gdb_index --remove-section .comment \
  --keep-symbols=keep_symbols debug mini_debuginfo
strip --strip-all -R .comment {name}
xz mini_debuginfo
objcopy --add-section .gnu_debugdata=mini_debuginfo.xz {name}
""", work)
        assert not _has_section(binary, ".symtab") and _has_section(binary, ".gnu_debugdata")
        keep = frozenset((work / "keep_symbols").read_text().split())
        dyn = _dynsym_functions(binary)

        def source(p: Probe) -> str:
            return "dynsym" if p.raws & dyn else "minidebuginfo"

        return self._shape(key, binary, unstripped, source, visible=keep | dyn)

    def _mini_lib(self, key):
        return self._mini(key, self.c_lib(), "libshapes.so")

    def _mini_exe(self, key):
        return self._mini(key, self.c_exe(pie=True), "shapes")
