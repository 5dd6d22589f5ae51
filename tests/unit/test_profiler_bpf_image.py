"""Kept compiled programs: map descriptors taken out of the instructions and
put back, and a kept file trusted only when it is the user's alone."""
import os

import pytest

from profiler import bpf_image
from profiler.bpf_image import Image, MapSpec, ProgSpec


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
    assert a != bpf_image.key_for("prog2", "headers A") != bpf_image.key_for("prog", "headers B")


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
    monkeypatch.setenv("PROFILER_NO_PROGRAM_CACHE", "1")
    bpf_image.write("k3", IMAGE)
    assert not (cache_home / "profiler" / "bpf" / "k3.json").exists()
