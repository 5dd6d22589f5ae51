"""Source lines and inline chains of code addresses, from DWARF.

For an address in an object with DWARF (the file itself, or its debug file
found by build-id, .gnu_debuglink or --debug-dir): the function, file, line
and column, and the chain of inlined calls there, innermost first, each level
with the line where the next inner level was called (DW_AT_call_line) and
the innermost with the address's own line.

The engine is `llvm-symbolizer`, one batch process per object, chosen by
measurement (bench/lines.py; 5,000 instruction addresses of pyenv's
libpython3.11, 23 MB with DWARF 5; best of 3):

    pyelftools, decoding line programs + DIEs:  ~15 s,   1.26 GB peak RSS
    addr2line -f -i -C (one batch process):     0.24 s,  151 MB
    llvm-symbolizer --output-style=JSON:        0.16 s,  127 MB
    this module, cold / warm (cache):           0.21 s / 0.013 s,  127 / 21 MB

Decoding a large object's DWARF in Python costs 60x addr2line's time and 8x
its memory; llvm-symbolizer is faster than addr2line, reads DWARF 2-5,
zlib-compressed sections, .debug_line_str / .debug_str_offsets and split
ranges, and prints JSON (no parsing of a line-oriented format whose file
names may hold anything). addr2line itself was no candidate: binutils 2.40
gives some DWARF 5 rows the unit's main file (templates.cpp:243 for a
30-line file) and names inlined functions without a linkage name after
their enclosing symbol (tests/unit/test_symbolize_lines.py lists both). The
price is LLVM's start: ~20 ms and 60 MB per object, which on a small program
is more than addr2line's whole answer (2.5 ms, 3 MB); the cache pays it once
per build. LLVM 14 (BCC's) cannot read zstd-compressed sections: such a
file is first copied with its debug sections decompressed by binutils'
objcopy (2.40 reads zstd; no Python zstd module is needed), and without
objcopy it gives names without lines, with one warning.

Answers are kept per build-id beside the symbol cache (same ownership
rules), for the addresses profiles asked about: a warm run starts no
process. A missing tool, a debug file that is truncated, of another build,
or of a DWARF version we do not know, degrades to names without lines with
one warning: never a wrong line.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import struct
import subprocess
import tempfile
import zlib
from typing import Iterable, NamedTuple

from profiler.binary import debuginfo, elf
from profiler.binary.cache import write_private
from profiler.binary.readfile import open_regular, ours_alone, trusted_for_cache

TIMEOUT = 600  # seconds for one object's batch; a huge object takes seconds
_DWARF_VERSIONS = (2, 3, 4, 5)
_FORMAT = 1  # of the cache files: bump when their shape changes


class SourceFrame(NamedTuple):  # a tuple: thousands are made per object, so cheap to make
    """One level of an inline chain."""

    function: str  # as DWARF names it: the linkage (mangled) name when it has one
    file: str  # "" when unknown
    line: int  # 0 when unknown
    column: int = 0
    start_line: int = 0  # the function's DW_AT_decl_line


Chain = tuple[SourceFrame, ...]  # innermost first; () = no lines for the address


# ---------------------------------------------------------------- parsing


class LinesError(Exception):
    """One object's lines could not be read (the reason is its message)."""


def parse_llvm_json(text: str) -> dict[int, Chain]:
    """llvm-symbolizer --output-style=JSON output (one object a line) ->
    address -> chain. An address any of whose levels names no file has no
    chain: a symbol-table answer is not a line, and a chain cut short would
    put an inlined function where its caller belongs. An error record
    (the file could not be read) raises LinesError."""
    out: dict[int, Chain] = {}
    records = json.loads("[" + ",".join(r for r in text.splitlines() if r.strip()) + "]")
    for record in records:
        if "Error" in record:  # the whole file failed (the tool says so per address)
            raise LinesError(str((record.get("Error") or {}).get("Message", "error"))[:200])
        try:
            address = int(record["Address"], 16)
        except (KeyError, TypeError, ValueError):
            continue
        levels: list[SourceFrame] | None = []
        for sym in record.get("Symbol") or ():
            file = sym.get("FileName") or ""
            if file in ("", "??"):
                levels = None
                break
            name = sym.get("FunctionName") or ""
            levels.append(SourceFrame("" if name == "??" else name, file,
                                      int(sym.get("Line") or 0), int(sym.get("Column") or 0),
                                      int(sym.get("StartLine") or 0)))
        out[address] = tuple(levels) if levels else ()
    return out


# ---------------------------------------------------------------- the tool


def find_tool() -> str | None:
    """llvm-symbolizer on PATH, else the newest of Debian's versioned ones."""
    found = shutil.which("llvm-symbolizer")
    if found:
        return found
    for version in range(20, 10, -1):
        for path in (f"/usr/lib/llvm-{version}/bin/llvm-symbolizer",
                     f"/usr/bin/llvm-symbolizer-{version}"):
            if os.access(path, os.X_OK):
                return path
    return None


def run_symbolizer(tool: str, path: str, addresses: Iterable[int],
                   expected: tuple[int, int, int, int] | None = None,
                   zstd: bool = False) -> dict[int, Chain]:
    """One batch process for all addresses (ELF virtual addresses) of one
    file. The file is opened here and handed to the tool as a descriptor
    (/proc/self/fd/N in the child): a path the recorder kept open as
    /proc/self/fd/M means nothing to another process, and what was checked
    (`expected`: its identity) is then what is read."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    f = open_regular(path)
    if f is None:
        raise LinesError(f"cannot open {path}")
    with f:
        st = os.fstat(f.fileno())
        if expected is not None and (st.st_dev, st.st_ino, st.st_size,
                                     st.st_mtime_ns) != expected:
            raise LinesError(f"{path} changed since it was checked")
        if not zstd:
            return _run(tool, f.fileno(), wanted)
        with tempfile.TemporaryDirectory(prefix="profiler-lines-") as private:
            copy = os.path.join(private, "decompressed")
            _decompress(f.fileno(), copy)
            with open(copy, "rb") as g:
                return _run(tool, g.fileno(), wanted)


def _decompress(fd: int, out: str) -> None:
    """A copy of the file with its debug sections decompressed (zstd)."""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        raise LinesError("its debug sections are compressed with zstd, which llvm-symbolizer "
                         "14 cannot read, and objcopy (binutils) is not installed to "
                         "decompress them")
    try:
        done = subprocess.run([objcopy, "--decompress-debug-sections", f"/proc/self/fd/{fd}",
                               out], capture_output=True, timeout=TIMEOUT, pass_fds=(fd,),
                              check=False)
    except (OSError, subprocess.SubprocessError) as err:
        raise LinesError(f"objcopy failed: {err}") from None
    if done.returncode != 0:
        raise LinesError("its debug sections are compressed with zstd, which objcopy could "
                         "not decompress: " + done.stderr.decode("utf-8", "replace").strip()[:200])


def _run(tool: str, fd: int, wanted: list[int]) -> dict[int, Chain]:
    question = "".join(f"0x{a:x}\n" for a in wanted).encode()
    try:
        done = subprocess.run(
            [tool, f"--obj=/proc/self/fd/{fd}", "--inlining", "--output-style=JSON",
             "--no-demangle"],
            input=question, capture_output=True, timeout=TIMEOUT, check=False, pass_fds=(fd,))
    except (OSError, subprocess.SubprocessError) as err:
        raise LinesError(f"{os.path.basename(tool)} failed: {err}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise LinesError(f"{os.path.basename(tool)} failed: {' '.join(message)}")
    text = done.stdout.decode("utf-8", "surrogateescape")
    try:
        found = parse_llvm_json(text)
    except (ValueError, TypeError, AttributeError):
        raise LinesError(f"{os.path.basename(tool)} gave output that is not JSON") from None
    if set(found) != set(wanted):
        raise LinesError(f"{os.path.basename(tool)} did not answer for every address")
    return found


# ---------------------------------------------------------------- checking a file


@dataclasses.dataclass(frozen=True)
class DwarfFile:
    path: str
    identity: tuple[int, int, int, int]
    trusted: bool  # may be cached by build-id
    zstd: bool = False  # its debug sections are zstd-compressed: decompress a copy first


def check_dwarf_file(path: str, build_id: bytes | None) -> tuple[DwarfFile | None, str]:
    """(the file, "") when `path` holds DWARF we can read for this build;
    (None, "") when it has no DWARF at all; (None, why) when it has DWARF
    but must not be used: truncated, of another build, a DWARF version we
    do not read."""
    f = open_regular(path)
    if f is None:
        return None, ""
    with f:
        st = os.fstat(f.fileno())
        try:
            return _check(f, st, path, build_id)
        except (OSError, ValueError, struct.error, OverflowError, zlib.error) as err:
            return None, f"{path}: unreadable ({err})"


def _check(f, st: os.stat_result, path: str, build_id: bytes | None):
    # The house's ELF reader (binary/elf.py): pyelftools costs 25 ms to
    # import, more than a warm lookup.
    size = st.st_size
    found = elf.section_headers(f)
    if found is None:
        return None, f"{path}: not a readable ELF file"
    header, sections = found
    if header.shoff + header.shnum * header.shentsize > size:
        return None, f"{path}: truncated (its section headers end past the end of the file)"
    by_name = {s.name: s for s in sections}
    info = by_name.get(".debug_info") or by_name.get(".zdebug_info")
    if info is None or info.type == elf.SHT_NOBITS or \
            (by_name.get(".debug_line") or by_name.get(".zdebug_line")) is None:
        return None, ""
    for s in sections:
        if s.type != elf.SHT_NOBITS and s.offset + s.size > size:
            return None, f"{path}: truncated (section {s.name} ends past the end of the file)"
    if build_id is not None:
        f.seek(0)
        found = elf.read_image(f, tables=False).build_id
        if found is not None and found != build_id:
            return None, f"{path}: of another build (build-id {found.hex()}, " \
                         f"expected {build_id.hex()})"
    head = _section_head(f, info, header.little_endian, header.elfclass)
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if head is None:  # zstd: the version is checked by the tool, on the copy
        return DwarfFile(path, ident, trusted_for_cache(st), zstd=True), ""
    version = _unit_version(head, header.little_endian)
    if version not in _DWARF_VERSIONS:
        return None, f"{path}: DWARF version {version}, which is not read"
    return DwarfFile(path, ident, trusted_for_cache(st)), ""


def _section_head(f, sec, little: bool, elfclass: int) -> bytes | None:
    """The first bytes of a (possibly compressed) section; None for zstd."""
    f.seek(sec.offset)
    data = f.read(min(sec.size, 1 << 16))
    if sec.flags & elf.SHF_COMPRESSED:
        ch_type, _size, at = elf.compression_header(data, elfclass, little)
        if ch_type == elf.ELFCOMPRESS_ZSTD:
            return None
        if ch_type != elf.ELFCOMPRESS_ZLIB:
            raise ValueError(f"compression type {ch_type}")
        return zlib.decompressobj().decompress(data[at:], 64)
    if sec.name.startswith(".zdebug"):  # "ZLIB" + 8-byte big-endian size, then zlib
        return zlib.decompressobj().decompress(data[12:], 64)
    return data


def _unit_version(head: bytes, little: bool) -> int:
    order = "<" if little else ">"
    (length,) = struct.unpack_from(order + "I", head)
    at = 12 if length == 0xFFFFFFFF else 4  # 64-bit DWARF: 0xffffffff then 8 bytes
    return struct.unpack_from(order + "H", head, at)[0]


# ---------------------------------------------------------------- the cache


def _encode(chains: dict[int, Chain]) -> bytes:
    """Compact: strings once, each level a row of five numbers."""
    strings: dict[str, int] = {}

    def s(text: str) -> int:
        return strings.setdefault(text, len(strings))

    rows = {f"{a:x}": [[s(l.function), s(l.file), l.line, l.column, l.start_line] for l in c]
            for a, c in chains.items()}
    body = {"format": _FORMAT, "strings": list(strings), "addresses": rows}
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 1)


def _decode(data: bytes) -> dict[int, Chain]:
    body = json.loads(zlib.decompress(data))
    if body.get("format") != _FORMAT:
        raise ValueError("another format")
    strings = body["strings"]
    return {int(a, 16): tuple(SourceFrame(strings[f], strings[n], int(line), int(col), int(st))
                              for f, n, line, col, st in rows)
            for a, rows in body["addresses"].items()}


class LinesStore:
    """address -> chain per build-id, under the symbol cache's directory."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory

    def _path(self, build_id: bytes, kind: str) -> str | None:
        if not self.directory or not build_id:
            return None
        h = build_id.hex()
        return os.path.join(self.directory, h[:2], f"{h[2:]}.lines-{kind}")

    def load(self, build_id: bytes, kind: str) -> dict[int, Chain]:
        path = self._path(build_id, kind)
        if path is None:
            return {}
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                if not ours_alone(os.fstat(f.fileno()), stat.S_IFREG):
                    return {}  # not ours alone: never trusted
                return _decode(f.read())
        except (OSError, ValueError, KeyError, TypeError, IndexError, zlib.error):
            return {}  # only ever a shortcut

    def save(self, build_id: bytes, kind: str, chains: dict[int, Chain]) -> None:
        path = self._path(build_id, kind)
        if path is None:
            return
        write_private(path, _encode(chains))


# ---------------------------------------------------------------- one object


class ObjectLines:
    """Lines of one object's addresses (ELF virtual addresses), looked up in
    batches, answers kept in memory and on disk."""

    def __init__(self, dwarf: DwarfFile, build_id: bytes | None, store: LinesStore | None,
                 tool: str) -> None:
        self.dwarf = dwarf
        self._build_id = build_id if dwarf.trusted else None
        self._store = store if self._build_id else None
        self._kind = f"{dwarf.identity[2]}"
        self._tool = tool
        self._known: dict[int, Chain] | None = None

    def lookup(self, vaddrs: Iterable[int]) -> dict[int, Chain]:
        """Raises LinesError when the tool fails on the object."""
        wanted = set(vaddrs)
        if self._known is None:
            self._known = self._store.load(self._build_id, self._kind) if self._store else {}
        missing = wanted - self._known.keys()
        if missing:
            self._known.update(run_symbolizer(self._tool, self.dwarf.path, missing,
                                              self.dwarf.identity, self.dwarf.zstd))
            if self._store:
                self._store.save(self._build_id, self._kind, self._known)
        return {a: self._known[a] for a in wanted}


def find_dwarf(path: str, build_id: bytes | None, debuglink: tuple[str, int] | None,
               origin: str, root: str, debug_dirs: tuple[str, ...]
               ) -> tuple[DwarfFile | None, list[str]]:
    """The file holding this object's DWARF: itself, else its debug file by
    build-id, else by debuglink (CRC-checked); and why candidates with
    DWARF were refused."""
    problems = []
    found, why = check_dwarf_file(path, build_id)
    if found is not None:
        return found, []
    if why:
        problems.append(why)
    candidates = debuginfo.build_id_paths(build_id, debug_dirs) if build_id else []
    for candidate in candidates:
        found, why = check_dwarf_file(candidate, build_id)
        if found is not None:
            return found, problems
        if why:
            problems.append(why)
    if debuglink:
        name, crc = debuglink
        for candidate in debuginfo.debuglink_paths(os.path.dirname(origin), name, debug_dirs,
                                                   root):
            f = open_regular(candidate)
            if f is None:
                continue
            with f:
                same = debuginfo.file_crc32(f) == crc
            if not same:
                continue
            found, why = check_dwarf_file(candidate, build_id)
            if found is not None:
                return found, problems
            if why:
                problems.append(why)
    return None, problems
