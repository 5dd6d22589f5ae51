"""Kept compiled programs: map descriptors taken out of the instructions and
put back, and a kept file trusted only when it is the user's alone."""
import os

import pytest

from profiler.record.bpf import image as bpf_image
from profiler.record.bpf.image import Image, MapSpec, ProgSpec


def ld_map_fd(dst: int, fd: int) -> bytes:
    """ld_imm64 dst, map fd (BPF_PSEUDO_MAP_FD): two 8-byte slots."""
    return bytes([0x18, (1 << 4) | dst, 0, 0]) + fd.to_bytes(4, "little") + bytes(8)


EXIT = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])
MOV_R0_7 = bytes([0xB7, 0, 0, 0, 7, 0, 0, 0])  # an ordinary immediate, left alone
SPECS = {"counts": MapSpec("counts", 1, 40, 8, 16384, 0), "stats": MapSpec("stats", 6, 4, 8, 6, 0)}


def test_descriptors_become_slots_and_come_back():
    insns = MOV_R0_7 + ld_map_fd(1, 42) + ld_map_fd(2, 7) + EXIT
    image = bpf_image.from_instructions(SPECS, {"counts": 42, "stats": 7}, {"p": (7, insns)},
                                        "GPL", 0)
    prog = image.progs[0]
    assert prog.slots == ((1, "counts"), (3, "stats"))
    assert prog.insns[:8] == MOV_R0_7  # the immediate 7 of a mov is not a map
    assert prog.insns[12:16] == prog.insns[28:32] == bytes(4)  # no stale descriptors kept


def test_an_unknown_descriptor_means_nothing_is_kept():
    insns = ld_map_fd(1, 99) + EXIT
    assert bpf_image.from_instructions(SPECS, {"counts": 42}, {"p": (7, insns)}, "GPL", 0) is None


def test_key_changes_with_program_and_headers():
    a = bpf_image.key_for("prog", "headers A")
    assert a == bpf_image.key_for("prog", "headers A")
    assert len({a, bpf_image.key_for("prog2", "headers A"), bpf_image.key_for("prog", "headers B")}) == 3


def test_code_naming_anything_but_a_map_descriptor_is_not_kept():
    """A map value (src_reg 2) or a BTF id would carry a meaning of this
    process into the next: such code is never kept."""
    map_value = bytes([0x18, (2 << 4) | 1, 0, 0]) + (42).to_bytes(4, "little") + bytes(8)
    assert bpf_image.from_instructions(SPECS, {"counts": 42}, {"p": (7, map_value + EXIT)},
                                       "GPL", 0) is None
    # An ld_imm64 of a plain 64-bit constant is fine; its second slot is not read as code.
    constant = bytes([0x18, 1, 0, 0]) + bytes(4) + bytes([0x18, 0x10, 0, 0]) + bytes(4)
    image = bpf_image.from_instructions(SPECS, {"counts": 42}, {"p": (7, constant + EXIT)},
                                        "GPL", 0)
    assert image is not None and image.progs[0].slots == ()


IMAGE = Image(maps=tuple(SPECS.values()),
              progs=(ProgSpec("p", 7, ld_map_fd(1, 0) + EXIT, ((0, "counts"),)),),
              license="GPL", kern_version=0)


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("PROFILER_NO_PROGRAM_CACHE", raising=False)
    return home


def test_round_trip_and_trust(cache_home, monkeypatch):
    bpf_image.write("k1", IMAGE)
    assert bpf_image.read("k1") == IMAGE
    path = cache_home / "profiler" / "bpf" / "k1.json"
    os.chmod(path, 0o664)  # another user could have written it: never loaded
    assert bpf_image.read("k1") is None
    os.chmod(path, 0o600)
    link = cache_home / "profiler" / "bpf" / "k2.json"
    link.symlink_to(path)
    assert bpf_image.read("k2") is None
    path.write_text('{"format": 99}')
    assert bpf_image.read("k1") is None
    path.write_text("not json")
    assert bpf_image.read("k1") is None
    path.write_text("[1, 2]")
    assert bpf_image.read("k1") is None
    bad_slot = Image(IMAGE.maps, (ProgSpec("p", 7, EXIT, ((0, "counts"),)),), "GPL", 0)
    bpf_image.write("k4", bad_slot)  # the slot is not an ld_imm64
    assert bpf_image.read("k4") is None
    monkeypatch.setenv("PROFILER_NO_PROGRAM_CACHE", "1")
    bpf_image.write("k3", IMAGE)
    assert not (cache_home / "profiler" / "bpf" / "k3.json").exists()


class FakeBatchLib:
    """A map of 6 entries whose batch call hands out 3, then fails (as the
    kernel does with ENOSPC when a bucket outgrows the room left)."""

    def __init__(self):
        self.entries = {bytes([i]) * 4: bytes([i]) * 8 for i in range(1, 7)}
        self.calls = 0

    def bpf_lookup_and_delete_batch(self, fd, in_b, out_b, keys, values, count):
        import ctypes
        self.calls += 1
        if self.calls > 1:
            count._obj.value = 0
            ctypes.set_errno(28)
            return -1
        taken = list(self.entries)[:3]
        kbuf = ctypes.cast(keys, ctypes.POINTER(ctypes.c_char))
        vbuf = ctypes.cast(values, ctypes.POINTER(ctypes.c_char))
        for i, k in enumerate(taken):
            for j, b in enumerate(k):
                kbuf[i * 4 + j] = bytes([b])
            for j, b in enumerate(self.entries.pop(k)):
                vbuf[i * 8 + j] = bytes([b])
        count._obj.value = 3
        return 0

    def bpf_get_next_key(self, fd, key, nxt):
        import ctypes
        keys = sorted(self.entries)
        current = ctypes.string_at(key, 4) if key is not None else None
        later = [k for k in keys if current is None or k > current]
        if not later:
            return -1
        ctypes.memmove(nxt, later[0], 4)
        return 0

    def bpf_lookup_elem(self, fd, key, value):
        import ctypes
        k = bytes(key.raw if hasattr(key, "raw") else key)
        if k not in self.entries:
            ctypes.set_errno(2)
            return -1
        ctypes.memmove(value, self.entries[k], 8)
        return 0

    def bpf_delete_elem(self, fd, key):
        self.entries.pop(bytes(key), None)
        return 0


def test_a_failing_batch_keeps_what_it_already_took(monkeypatch):
    from profiler.record.bpf import maps as bpf_maps
    fake = FakeBatchLib()
    monkeypatch.setattr(bpf_maps, "_LIB", fake)
    table = bpf_maps.BpfMap(3, 4, 8, 6, 1)
    items = table.drain()
    assert sorted(k[0] for k, _v in items) == [1, 2, 3, 4, 5, 6]  # none lost
    assert all(v == k[:1] * 8 for k, v in items) and not fake.entries
