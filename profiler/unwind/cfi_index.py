"""Where each FDE is: .eh_frame_hdr's sorted table, or (without one) every
FDE header read once into two sorted arrays, kept on disk by build-id."""
from __future__ import annotations

import array
import os
import stat
import struct

from profiler.binary.cache import write_private
from profiler.binary.readfile import ours_alone
from profiler.unwind.cfi_records import DW_EH_PE_omit, Bad, Cursor, Frames, Place, pointer


def hdr_index(hdr, eh_addr: int, eh_size: int, addr_size: int, order: str):
    """(starts, offsets) from .eh_frame_hdr's sorted table, None if it has
    none or it cannot be read."""
    data = hdr.data
    place = Place(hdr.addr, hdr.addr, addr_size, order)
    cur = Cursor(data, 0, len(data), order)
    try:
        if cur.u8() != 1:
            return None
        ptr_enc, count_enc, table_enc = cur.u8(), cur.u8(), cur.u8()
        if ptr_enc != DW_EH_PE_omit:
            pointer(cur, ptr_enc, place)
        if count_enc == DW_EH_PE_omit or table_enc == DW_EH_PE_omit:
            return None
        count = pointer(cur, count_enc, place)
        pos = cur.pos
        if table_enc == 0x3B:  # datarel|sdata4: the standard layout, unpacked in bulk
            if count * 8 > len(data) - pos:
                return None
            pairs = array.array("i", data[pos:pos + count * 8])
            if (order == "little") != (array.array("i", [1]).tobytes()[0] == 1):
                pairs.byteswap()
            base = hdr.addr
            starts = array.array("Q", [(v + base) & 0xFFFFFFFFFFFFFFFF for v in pairs[0::2]])
            offsets = array.array("q", [v + base - eh_addr for v in pairs[1::2]])
        else:
            if count > len(data):  # every entry takes at least a byte
                return None
            starts, offsets = array.array("Q"), array.array("q")
            for _ in range(count):
                starts.append(pointer(cur, table_enc, place))
                offsets.append(pointer(cur, table_enc, place) - eh_addr)
    except (Bad, OverflowError):
        return None
    if any(not 0 <= o < eh_size for o in offsets):
        return None
    if any(starts[i] > starts[i + 1] for i in range(len(starts) - 1)):
        pairs = sorted(zip(starts, offsets))
        starts = array.array("Q", [p[0] for p in pairs])
        offsets = array.array("q", [p[1] for p in pairs])
    return starts, offsets


def scan_index(frames: Frames) -> tuple[array.array, array.array]:
    """(starts, offsets) of every readable FDE, sorted by start: read once
    when no .eh_frame_hdr table says where they are."""
    found = []
    data, off = frames.data, 0
    while off + 4 <= len(data):
        try:
            head = frames.entry(off)
        except Bad:
            break  # a length that cannot be trusted: nothing after it can be found
        if head is None:
            # A zero terminator ends .eh_frame for libgcc; readelf reads on,
            # and so do we: whatever follows is parsed as carefully as the rest.
            off += 4
            continue
        if not head[0]:
            try:
                begin, end, *_ = frames.fde(off)
                if end > begin:
                    found.append((begin, off))
            except Bad:
                pass
        off = head[3]
    found.sort()
    return (array.array("Q", [f[0] for f in found]), array.array("q", [f[1] for f in found]))


# ---------------------------------------------------------------- disk cache

_MAGIC = b"CFIX\x01\x00\x00\x00"
_COUNT = struct.Struct("<QQ")


def _index_path(cache, build_id: bytes | None, kind: str) -> str | None:
    directory = getattr(cache, "directory", None)
    if not directory or not build_id:
        return None
    h = build_id.hex()
    return os.path.join(directory, h[:2], f"{h[2:]}.{kind}")


def load_index(cache, build_id, kind: str, size: int):
    path = _index_path(cache, build_id, kind)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not ours_alone(st, stat.S_IFREG) or st.st_size > 64 + 16 * size:
                return None  # not ours alone, or larger than any index of this section
            with os.fdopen(os.dup(fd), "rb") as f:
                blob = f.read()
        finally:
            os.close(fd)
        if blob[:8] != _MAGIC:
            return None
        count, section = _COUNT.unpack_from(blob, 8)
        if section != size or len(blob) != 24 + 16 * count:
            return None
        starts = array.array("Q", blob[24:24 + 8 * count])
        offsets = array.array("q", blob[24 + 8 * count:])
        if not _little():
            starts.byteswap()
            offsets.byteswap()
        if any(not 0 <= o < size for o in offsets) or \
                any(starts[i] > starts[i + 1] for i in range(count - 1)):
            return None
        return starts, offsets
    except (OSError, ValueError, struct.error, OverflowError, MemoryError):
        return None


def save_index(cache, build_id, kind: str, index) -> None:
    path = _index_path(cache, build_id, kind)
    if path is None:
        return
    starts, offsets = array.array("Q", index[0]), array.array("q", index[1])
    if not _little():
        starts.byteswap()
        offsets.byteswap()
    size = int(kind.rsplit("-", 1)[1])
    blob = _MAGIC + _COUNT.pack(len(starts), size) + starts.tobytes() + offsets.tobytes()
    write_private(path, blob)


def _little() -> bool:
    return array.array("H", [1]).tobytes()[0] == 1
