"""Which file holds an object's DWARF, and whether it may be read.

The object itself, else its debug file by build-id, else by .gnu_debuglink
(CRC-checked), under the debug directories and the process's root. A file
with DWARF is refused, with the reason, when it is truncated, of another
build, or of a DWARF version no engine reads: a wrong line is worse than
none.
"""
from __future__ import annotations

import dataclasses
import os
import struct

from profiler.binary import debuginfo, elf
from profiler.binary.readfile import open_regular, trusted_for_cache

_DWARF_VERSIONS = (2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class DwarfFile:
    path: str
    identity: tuple[int, int, int, int]
    trusted: bool  # may be cached by build-id
    zstd: bool = False  # its debug sections are zstd-compressed: decompress a copy first
    info_size: int = 0  # of .debug_info, uncompressed


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
        except (OSError, ValueError, struct.error, OverflowError) as err:
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
    head, info_size = _section_head(f, info, header.little_endian, header.elfclass)
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if head is None:  # zstd: the version is checked by the tool, on the copy
        return DwarfFile(path, ident, trusted_for_cache(st), zstd=True,
                         info_size=info_size), ""
    version = _unit_version(head, header.little_endian)
    if version not in _DWARF_VERSIONS:
        return None, f"{path}: DWARF version {version}, which is not read"
    return DwarfFile(path, ident, trusted_for_cache(st), info_size=info_size), ""


def _section_head(f, sec, little: bool, elfclass: int) -> tuple[bytes | None, int]:
    """The first bytes of a (possibly compressed) section (None for zstd:
    its whole stream would have to be read), and its uncompressed size."""
    f.seek(sec.offset)
    data = f.read(min(sec.size, 1 << 16))
    size = elf.uncompressed_size(data, sec.flags, sec.name, elfclass, little, sec.size)
    if sec.flags & elf.SHF_COMPRESSED and \
            elf.compression_header(data, elfclass, little)[0] == elf.ELFCOMPRESS_ZSTD:
        return None, size
    return elf.uncompress(data, sec.flags, sec.name, elfclass, little, limit=size,
                          head=64), size


def _unit_version(head: bytes, little: bool) -> int:
    order = "<" if little else ">"
    (length,) = struct.unpack_from(order + "I", head)
    at = 12 if length == 0xFFFFFFFF else 4  # 64-bit DWARF: 0xffffffff then 8 bytes
    return struct.unpack_from(order + "H", head, at)[0]


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
