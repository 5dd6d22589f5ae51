"""Source lines and inline chains of code addresses, from DWARF.

For an address in an object with DWARF (the file itself, or its debug file
found by build-id, .gnu_debuglink or --debug-dir): the function, file, line
and column, and the chain of inlined calls there, innermost first, each level
with the line where the next inner level was called (DW_AT_call_line) and
the innermost with the address's own line.

Two engines answer, chosen per object by the size of its .debug_info
(the test programs of tests/unit/lines_programs.py, best of 3; the
in-process time includes reading the sections):

    object (.debug_info)         addresses   in-process   llvm-symbolizer
    small C program (1.2 KB)        219        0.0007 s      0.019 s
    C++ templates (96 KB)          1329        0.017 s       0.057 s
    Rust release (1.1 MB)           200        0.26 s        0.048 s
    libc's debug file (2.3 MB)     1000        0.34 s        0.11 s
    libpython3.11 (9 MB)           5000        0.87 s        0.19 s

- up to IN_PROCESS_LIMIT, this process (dwarf_chains.py, our own DWARF
  reader): no process to start, where LLVM's start alone is 20 ms and a
  small program's whole answer from addr2line 2.8 ms;
- above it, `llvm-symbolizer`, one batch process per object, which prints
  JSON (no parsing of a line-oriented format whose file names may hold
  anything).

Both name every level alike: on 5,000 addresses each of libc, libpython
and a Rust program, and 1,329 of a C++ one, they differ only where
llvm-symbolizer fills in from the symbol table (the outermost level's
name, which a profile takes from there too; a file name at line 0 for
code outside every unit, where ours gives no line). So the choice changes
only the time; without llvm-symbolizer every object is read here.
addr2line was no candidate: binutils 2.40 gives some DWARF 5 rows the
unit's main file (templates.cpp:243 for a 30-line file) and names inlined
functions without a linkage name after their enclosing symbol
(tests/unit/test_symbolize_lines.py lists both). pyelftools, the design
card's DWARF library, builds an object per entry and attribute: 15 s and
1.26 GB for libpython's 5,000.

zstd-compressed sections (Python 3.11 has no zstd module, LLVM 14 cannot
read them either) are first copied with their debug sections decompressed
by binutils' objcopy (2.40 reads zstd), then read by llvm-symbolizer.

Answers are kept per build-id beside the symbol cache (same ownership
rules), for the addresses profiles asked about: a warm run reads no DWARF
and starts no process. A debug file that is truncated, damaged, of
another build or of a DWARF version we do not know, or zstd sections
without llvm-symbolizer, degrade to names without lines with one warning:
never a wrong line.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from array import array
from typing import Iterable

from profiler.binary.cache import write_private
from profiler.binary.readfile import open_regular, ours_alone, trusted_for_cache
from profiler.symbolize.dwarf_chains import Chain, DwarfChains, SourceFrame
from profiler.symbolize.dwarf_file import DwarfFile, check_dwarf_file, find_dwarf
from profiler.symbolize.dwarf_units import DwarfError, Unsupported

__all__ = ["Chain", "SourceFrame", "DwarfFile", "LinesError", "ObjectLines", "LinesStore",
           "find_dwarf", "find_tool", "check_dwarf_file", "parse_llvm_json", "run_symbolizer"]

TIMEOUT = 600  # seconds for one object's batch; a huge object takes seconds
# .debug_info bytes up to which an object is read in this process (the
# table above: 96 KB is 3x faster here, 1.1 MB 5x faster in LLVM).
IN_PROCESS_LIMIT = 512 << 10




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


# ---------------------------------------------------------------- the cache


# The file: MAGIC, the counts (_HEAD), then strings (NUL-separated UTF-8),
# each level five numbers (function and file as string numbers, line,
# column, start line), each chain's first item, the chains' items (level
# numbers), the addresses and each one's chain number; then which file
# answered: path (a string number), device, inode, size, mtime, zstd and
# .debug_info's size. Arrays in this machine's byte order: a warm run reads
# them with no parsing (JSON took a third of a small program's warm lookup).
# READER: bump when either engine's answers may change, so that no answer
# of an older reader is trusted again.
READER = 2
MAGIC = b"PLINES" + bytes([READER]) + (b"L" if sys.byteorder == "little" else b"B")
_HEAD = struct.Struct("=6Q")


def _encode(dwarf: DwarfFile, chains: dict[int, Chain]) -> bytes:
    """Compact, and quick to read back: strings, levels and chains once
    each (neighbouring instructions share theirs), then each address's
    chain by number; and which file answered, so that a warm run can trust
    the answers after one stat() instead of finding and checking the file."""
    strings: dict[str, int] = {}
    levels: dict[SourceFrame, int] = {}
    distinct: dict[Chain, int] = {}

    def s(text: str) -> int:
        return strings.setdefault(text, len(strings))

    for chain in chains.values():
        if chain not in distinct:
            distinct[chain] = len(distinct)
            for level in chain:
                levels.setdefault(level, len(levels))
    addresses = sorted(chains)
    level_rows = array("q")
    for l in levels:
        level_rows.extend((s(l.function), s(l.file), l.line, l.column, l.start_line))
    firsts, items = array("q", [0]), array("q")
    for chain in distinct:
        items.extend(levels[l] for l in chain)
        firsts.append(len(items))
    identity = array("q", (s(dwarf.path), *dwarf.identity, int(dwarf.zstd), dwarf.info_size))
    text = "\0".join(strings).encode("utf-8", "surrogateescape")
    return b"".join((MAGIC, _HEAD.pack(len(text), len(levels), len(distinct), len(items),
                                       len(addresses), len(identity)), text,
                     level_rows.tobytes(), firsts.tobytes(), items.tobytes(),
                     array("Q", addresses).tobytes(),
                     array("q", (distinct[chains[a]] for a in addresses)).tobytes(),
                     identity.tobytes()))


def _decode(data: bytes) -> tuple[DwarfFile, dict[int, Chain]]:
    if not data.startswith(MAGIC):
        raise ValueError("another format")
    at = len(MAGIC)
    n_text, n_levels, n_chains, n_items, n_addresses, n_identity = _HEAD.unpack_from(data, at)
    at += _HEAD.size
    if n_identity != 7 or len(data) != at + n_text + 8 * (
            5 * n_levels + n_chains + 1 + n_items + 2 * n_addresses + n_identity):
        raise ValueError("a damaged lines file")
    strings = data[at:at + n_text].decode("utf-8", "surrogateescape").split("\0")
    at += n_text

    def take(code: str, n: int) -> array:
        nonlocal at
        out = array(code, data[at:at + 8 * n])
        at += 8 * n
        return out
    rows, firsts, items = take("q", 5 * n_levels), take("q", n_chains + 1), take("q", n_items)
    addresses, of, identity = take("Q", n_addresses), take("q", n_addresses), take("q", 7)
    levels = [SourceFrame(strings[rows[i]], strings[rows[i + 1]], rows[i + 2], rows[i + 3],
                          rows[i + 4]) for i in range(0, 5 * n_levels, 5)]
    chains = [tuple([levels[j] for j in items[firsts[i]:firsts[i + 1]]])
              for i in range(n_chains)]
    answers = dict(zip(addresses, [chains[i] for i in of]))
    path, dev, ino, size, mtime, zstd, info_size = identity
    return DwarfFile(strings[path], (dev, ino, size, mtime), True, bool(zstd), info_size), \
        answers


class LinesStore:
    """address -> chain per build-id, under the symbol cache's directory."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory

    def _path(self, build_id: bytes) -> str | None:
        if not self.directory or not build_id:
            return None
        h = build_id.hex()
        return os.path.join(self.directory, h[:2], f"{h[2:]}.lines")

    def load(self, build_id: bytes) -> tuple[DwarfFile, dict[int, Chain]] | None:
        """The file that answered and its answers, if that file is still
        the one it was (same device, inode, size and mtime)."""
        path = self._path(build_id)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                if not ours_alone(os.fstat(f.fileno()), stat.S_IFREG):
                    return None  # not ours alone: never trusted
                dwarf, answers = _decode(f.read())
            st = os.stat(dwarf.path)
        except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
            return None  # only ever a shortcut
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != dwarf.identity or \
                not trusted_for_cache(st):
            return None
        return dwarf, answers

    def save(self, build_id: bytes, dwarf: DwarfFile, chains: dict[int, Chain]) -> None:
        path = self._path(build_id)
        if path is None:
            return
        try:
            data = _encode(dwarf, chains)
        except (OverflowError, TypeError, ValueError):
            return  # a number no line or column holds: only the next run's speed is lost
        write_private(path, data)


# ---------------------------------------------------------------- one object


class ObjectLines:
    """Lines of one object's addresses (ELF virtual addresses), looked up in
    batches, answers kept in memory and on disk. `where` is the object's
    symbols (objfile.ObjectSymbols), which say where its DWARF may be; the
    file holding it is found when an address is not answered from the
    disk cache."""

    def __init__(self, where, store: LinesStore | None, tool: str | None) -> None:
        self._where = (where.path, where.build_id, where.debuglink, where.origin, where.root,
                       where.debug_dirs)
        self._build_id = where.build_id
        self._problem = ""  # why the DWARF file found was refused
        self._store = store if self._build_id else None
        self._tool = tool
        self.dwarf: DwarfFile | None = None
        self._looked = False  # for the DWARF file
        self._known: dict[int, Chain] | None = None
        self._reader: DwarfChains | None = None

    def lookup(self, vaddrs: Iterable[int]) -> dict[int, Chain]:
        """Answers for the addresses (none when the object has no DWARF);
        raises LinesError when its DWARF cannot be read."""
        wanted = set(vaddrs)
        if self._known is None:
            self._known = {}
            found = self._store.load(self._build_id) if self._store else None
            if found is not None:
                self.dwarf, self._known = found
                self._looked = True
        missing = wanted - self._known.keys()
        if missing:
            dwarf = self._dwarf()
            if dwarf is None:
                return {}
            self._known.update(self._read(dwarf, missing))
            if self._store and dwarf.trusted:
                self._store.save(self._build_id, dwarf, self._known)
        return {a: self._known[a] for a in wanted}

    def _dwarf(self) -> DwarfFile | None:
        if not self._looked:
            self._looked = True
            self.dwarf, problems = find_dwarf(*self._where)
            self._problem = problems[0] if self.dwarf is None and problems else ""
        if self._problem:
            raise LinesError(self._problem)
        return self.dwarf

    def _read(self, dwarf: DwarfFile, missing: set[int]) -> dict[int, Chain]:
        if not dwarf.zstd and (self._tool is None or dwarf.info_size <= IN_PROCESS_LIMIT):
            try:
                return self._in_process(dwarf, missing)
            except Unsupported as err:
                if self._tool is None:
                    raise LinesError(f"{err}, which only llvm-symbolizer reads here, and it "
                                     f"is not installed (Debian: apt install llvm)") from None
        if self._tool is None:
            raise LinesError("its debug sections are compressed with zstd, which only "
                             "llvm-symbolizer reads here, and it is not installed (Debian: "
                             "apt install llvm)")
        return run_symbolizer(self._tool, dwarf.path, missing, dwarf.identity, dwarf.zstd)

    def _in_process(self, dwarf: DwarfFile, missing: set[int]) -> dict[int, Chain]:
        try:
            if self._reader is None:
                f = open_regular(dwarf.path)
                if f is None:
                    raise LinesError(f"cannot open {dwarf.path}")
                with f:
                    st = os.fstat(f.fileno())
                    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != dwarf.identity:
                        raise LinesError(f"{dwarf.path} changed since it was checked")
                    self._reader = DwarfChains.of_file(f)
            return self._reader.chains(missing)
        except (DwarfError, OSError, IndexError, ValueError, KeyError, OverflowError,
                TypeError, struct.error) as err:
            # hostile or damaged DWARF: no lines, never a wrong one; and no
            # answer later from a reader that saw it half
            self._reader = None
            raise LinesError(f"malformed DWARF ({err or type(err).__name__})") from None
        except Unsupported:
            self._reader = None
            raise
