"""Source lines and inline chains of code addresses, from DWARF.

For an address in an object with DWARF (the file itself, or its debug file
found by build-id, .gnu_debuglink or --debug-dir): the function, file, line
and column, and the chain of inlined calls there, innermost first, each level
with the line where the next inner level was called (DW_AT_call_line) and
the innermost with the address's own line.

The engine is `llvm-symbolizer`, one batch process per object, chosen by
measurement (bench/lines.py; 5,000 instruction addresses of pyenv's
libpython3.11, 23 MB with DWARF 5):

    pyelftools, decoding line programs + DIEs:  ~15 s cold,  1.26 GB peak RSS
    addr2line -f -i (one batch process):        0.25 s,      152 MB
    llvm-symbolizer --output-style=JSON:        0.20 s,      127 MB

Decoding a large object's DWARF in Python costs 60x addr2line's time and 8x
its memory, against the issue's goal of "no slower than addr2line, at most
2x its memory"; llvm-symbolizer meets both, reads DWARF 2-5, zlib-compressed
sections, .debug_line_str / .debug_str_offsets, split ranges, and prints
JSON (no parsing of a line-oriented format whose file names may hold
anything). LLVM 14 (BCC's) cannot read zstd-compressed sections: such a file
gives names without lines, with one warning.

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
from typing import Iterable

from profiler.binary import debuginfo
from profiler.binary.readfile import open_regular, ours_alone, trusted_for_cache

TIMEOUT = 600  # seconds for one object's batch; a huge object takes seconds
_DWARF_VERSIONS = (2, 3, 4, 5)
_SHF_COMPRESSED = 0x800
_ELFCOMPRESS_ZLIB, _ELFCOMPRESS_ZSTD = 1, 2
_FORMAT = 1  # of the cache files: bump when their shape changes


@dataclasses.dataclass(frozen=True)
class SourceFrame:
    """One level of an inline chain."""

    function: str  # as DWARF names it: the linkage (mangled) name when it has one
    file: str  # "" when unknown
    line: int  # 0 when unknown
    column: int = 0
    start_line: int = 0  # the function's DW_AT_decl_line


Chain = tuple[SourceFrame, ...]  # innermost first; () = no lines for the address


# ---------------------------------------------------------------- parsing


def parse_llvm_json(text: str) -> dict[int, Chain]:
    """llvm-symbolizer --output-style=JSON output (one object a line) ->
    address -> chain. Levels that name no file are dropped from the end
    (a symbol-table answer is not a line); an address whose innermost level
    has no file has no chain."""
    out: dict[int, Chain] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        record = json.loads(raw)
        try:
            address = int(record["Address"], 16)
        except (KeyError, TypeError, ValueError):
            continue
        levels = []
        for sym in record.get("Symbol") or ():
            file = sym.get("FileName") or ""
            if file in ("", "??"):
                break
            name = sym.get("FunctionName") or ""
            levels.append(SourceFrame(function="" if name == "??" else name, file=file,
                                      line=int(sym.get("Line") or 0),
                                      column=int(sym.get("Column") or 0),
                                      start_line=int(sym.get("StartLine") or 0)))
        out[address] = tuple(levels)
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


class LinesError(Exception):
    """One object's lines could not be read (the reason is its message)."""


def run_symbolizer(tool: str, path: str, addresses: Iterable[int]) -> dict[int, Chain]:
    """One batch process for all addresses (ELF virtual addresses) of one file."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    question = "".join(f"0x{a:x}\n" for a in wanted).encode()
    try:
        done = subprocess.run(
            [tool, f"--obj={path}", "--inlining", "--output-style=JSON", "--no-demangle"],
            input=question, capture_output=True, timeout=TIMEOUT, check=False)
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
    if any('"Error"' in line for line in text.splitlines()[:1]) or \
            set(found) != set(wanted):
        raise LinesError(f"{os.path.basename(tool)} could not read the file")
    return found


# ---------------------------------------------------------------- checking a file


@dataclasses.dataclass(frozen=True)
class DwarfFile:
    path: str
    identity: tuple[int, int, int, int]
    trusted: bool  # may be cached by build-id


def check_dwarf_file(path: str, build_id: bytes | None) -> tuple[DwarfFile | None, str]:
    """(the file, "") when `path` holds DWARF we can read for this build;
    (None, "") when it has no DWARF at all; (None, why) when it has DWARF
    but must not be used: truncated, of another build, a DWARF version we
    do not read, zstd sections LLVM 14 cannot decompress."""
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
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        elf = ELFFile(f)
        sections = list(elf.iter_sections())
    except (ELFError, AssertionError, Exception) as err:  # pyelftools raises many kinds
        if isinstance(err, (KeyboardInterrupt, MemoryError)):
            raise
        return None, f"{path}: not a readable ELF file"
    size = st.st_size
    by_name = {s.name: s for s in sections}
    info = by_name.get(".debug_info") or by_name.get(".zdebug_info")
    if info is None or info["sh_type"] == "SHT_NOBITS" or by_name.get(".debug_line") is None \
            and by_name.get(".zdebug_line") is None:
        return None, ""
    for s in sections:
        if s["sh_type"] != "SHT_NOBITS" and s["sh_offset"] + s["sh_size"] > size:
            return None, f"{path}: truncated (section {s.name} ends past the end of the file)"
    if build_id is not None:
        found = _build_id(elf)
        if found is not None and found != build_id:
            return None, f"{path}: of another build (build-id {found.hex()}, " \
                         f"expected {build_id.hex()})"
    head = _section_head(f, info, elf.little_endian, elf.elfclass)
    if head is None:
        return None, f"{path}: compressed with zstd, which llvm-symbolizer 14 cannot read"
    version = _unit_version(head, elf.little_endian)
    if version not in _DWARF_VERSIONS:
        return None, f"{path}: DWARF version {version}, which is not read"
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return DwarfFile(path, ident, trusted_for_cache(st)), ""


def _build_id(elf) -> bytes | None:
    for s in elf.iter_sections():
        if s["sh_type"] != "SHT_NOTE":
            continue
        for note in s.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return bytes.fromhex(note["n_desc"])
    return None


def _section_head(f, sec, little: bool, elfclass: int) -> bytes | None:
    """The first bytes of a (possibly compressed) section; None for zstd."""
    f.seek(sec["sh_offset"])
    data = f.read(min(sec["sh_size"], 1 << 16))
    order = "<" if little else ">"
    if sec["sh_flags"] & _SHF_COMPRESSED:
        chdr = struct.Struct(order + ("IIQQ" if elfclass == 64 else "III"))
        ch_type = chdr.unpack_from(data)[0]
        if ch_type == _ELFCOMPRESS_ZSTD:
            return None
        if ch_type != _ELFCOMPRESS_ZLIB:
            raise ValueError(f"compression type {ch_type}")
        return zlib.decompressobj().decompress(data[chdr.size:], 64)
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
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)


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
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_encode(chains))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass


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
            self._known.update(run_symbolizer(self._tool, self.dwarf.path, missing))
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
