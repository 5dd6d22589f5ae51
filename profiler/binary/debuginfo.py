"""Where a stripped file's symbols went: separate debug files and MiniDebugInfo.

- build-id: DEBUG_DIR/.build-id/ab/cdef....debug, as distributions install
  their -dbg/-dbgsym packages;
- .gnu_debuglink: a file name plus a CRC-32 of the debug file, looked for in
  the binary's directory, its .debug/ subdirectory and DEBUG_DIR/<binary's
  directory>/ (gdb's order); a file whose CRC differs belongs to another
  build and is ignored;
- MiniDebugInfo: .gnu_debugdata, an xz-compressed ELF holding the symbols
  that .dynsym lacks (Fedora and others ship it).
"""
from __future__ import annotations

import lzma
import os
import zlib

from profiler.options import DEFAULT_DEBUG_DIRS  # noqa: F401  (re-exported)
from profiler.binary.readfile import MAX_CRC_BYTES

MAX_MINIDEBUGINFO = 256 << 20  # decompressed; more is a damaged or hostile section


def build_id_paths(build_id: bytes, debug_dirs: tuple[str, ...]) -> list[str]:
    h = build_id.hex()
    if len(h) < 4:
        return []
    return [os.path.join(d, ".build-id", h[:2], h[2:] + ".debug") for d in debug_dirs]


def debuglink_paths(binary_dir: str, name: str, debug_dirs: tuple[str, ...],
                    root: str = "") -> list[str]:
    """Candidates in gdb's order; `binary_dir` is the directory as the process
    sees it, `root` the prefix that reaches the process's file system."""
    paths = [f"{root}{binary_dir}/{name}", f"{root}{binary_dir}/.debug/{name}"]
    paths += [f"{d}{binary_dir}/{name}" for d in debug_dirs]
    return list(dict.fromkeys(os.path.normpath(p) for p in paths))


def file_crc32(f) -> int | None:
    """The CRC-32 .gnu_debuglink records, of a whole open file (None when
    unreadable or too large to be worth it)."""
    crc = 0
    try:
        if os.fstat(f.fileno()).st_size > MAX_CRC_BYTES:
            return None
        f.seek(0)
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    except OSError:
        return None
    return crc


def decompress_minidebuginfo(data: bytes) -> bytes | None:
    """The ELF inside .gnu_debugdata, or None when it is not valid xz."""
    try:
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, MAX_MINIDEBUGINFO)
    except (lzma.LZMAError, EOFError, ValueError):
        return None
    return out or None
