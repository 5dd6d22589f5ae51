"""A compiled BPF program kept for later runs: instructions and map definitions.

BCC compiles the program with clang on every run: about 1.6 s and 100 MB
here, most of a short profile's cost. Nothing in profile.bpf.c changes from
run to run except what its -D flags say (per-run values live in its `config`
map), so the first run keeps what BCC produced, and later runs with the same
flags, kernel and headers create the maps, put their descriptors into the
instructions that name them (ld_imm64, BPF_PSEUDO_MAP_FD) and load the
instructions through libbcc_bpf, never importing BCC. If the kernel refuses
a kept program, the run compiles again and replaces it.

A kept program runs in the kernel as root, so it is trusted only from the
user's own cache directory (cache.default_directory's rules) and only from a
file the user owns that no one else can write.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
import sys
import tempfile

from profiler.record.bpf import maps as bpf_maps
from profiler.binary.cache import default_directory
from profiler.binary.readfile import ours_alone

FORMAT = 1
LD_IMM64, PSEUDO_MAP_FD = 0x18, 1
INSN = 8  # bytes per instruction


@dataclasses.dataclass(frozen=True)
class MapSpec:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int


@dataclasses.dataclass(frozen=True)
class ProgSpec:
    name: str
    type: int
    insns: bytes  # map descriptors zeroed; `slots` says which map each one names
    slots: tuple[tuple[int, str], ...]  # (instruction index, map name)


@dataclasses.dataclass(frozen=True)
class Image:
    maps: tuple[MapSpec, ...]
    progs: tuple[ProgSpec, ...]
    license: str
    kern_version: int


@dataclasses.dataclass
class Loaded:
    """Descriptors of the maps and programs in the kernel, by name."""

    maps: dict[str, int]
    progs: dict[str, int]
    owned: bool  # False: BCC created them and closes them

    def close(self) -> None:
        if self.owned:
            for fd in [*self.progs.values(), *self.maps.values()]:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.maps, self.progs = {}, {}


def key_for(program: str, headers: str) -> str:
    """What the compiled program depends on: its text (flags included), the
    kernel it was built for, the headers and the compiler (BCC) it was built
    with, and this module's way of keeping it."""
    u = os.uname()
    text = json.dumps([FORMAT, program, u.release, u.version, u.machine, headers,
                       _file_identity(_LIBBCC), _file_identity(__file__)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_LIBBCC = "/usr/lib/x86_64-linux-gnu/libbcc.so.0"


def _file_identity(path: str) -> list:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        return [real, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path]


def _map_loads(code: bytes) -> list[tuple[int, int]] | None:
    """(instruction index, src_reg) of every ld_imm64, walked instruction by
    instruction (an ld_imm64 takes two slots); None for code that cannot be
    kept: a big-endian machine, or an ld_imm64 that names anything but a map
    by descriptor (a map value, a BTF id, a function), whose immediate would
    mean something else in another process."""
    if sys.byteorder != "little" or len(code) % INSN:
        return None
    found, at = [], 0
    while at < len(code):
        if code[at] == LD_IMM64:
            src = code[at + 1] >> 4
            if src not in (0, PSEUDO_MAP_FD):
                return None
            found.append((at // INSN, src))
            at += 2 * INSN
        else:
            at += INSN
    return found


def from_instructions(maps: dict[str, MapSpec], fds: dict[str, int],
                      progs: dict[str, tuple[int, bytes]], license: str,
                      kern_version: int) -> Image | None:
    """An image of loaded programs (`progs`: name -> (type, instructions as
    loaded, holding `fds`)); None if it cannot be kept."""
    names = {fd: name for name, fd in fds.items()}
    specs = []
    for name, (ptype, insns) in progs.items():
        code, slots = bytearray(insns), []
        loads = _map_loads(code)
        if loads is None:
            return None
        for index, src in loads:
            if src != PSEUDO_MAP_FD:
                continue
            at = index * INSN
            fd = int.from_bytes(code[at + 4:at + 8], "little", signed=True)
            if fd not in names:
                return None
            slots.append((index, names[fd]))
            code[at + 4:at + 8] = bytes(4)
        specs.append(ProgSpec(name, ptype, bytes(code), tuple(slots)))
    return Image(tuple(maps.values()), tuple(specs), license, kern_version)


def _valid(image: Image) -> bool:
    """Every slot is an ld_imm64 of a map by descriptor, naming a map we create."""
    names = {m.name for m in image.maps}
    for p in image.progs:
        loads = _map_loads(p.insns)
        if loads is None:
            return False
        by_fd = {i for i, src in loads if src == PSEUDO_MAP_FD}
        if {i for i, _n in p.slots} != by_fd or any(n not in names for _i, n in p.slots):
            return False
    return True


def load(image: Image) -> Loaded:
    """Create the maps and load the programs; BpfCallError if the kernel refuses."""
    lib = bpf_maps.lib()
    loaded = Loaded({}, {}, owned=True)
    try:
        for m in image.maps:
            loaded.maps[m.name] = bpf_maps._check(
                lib.bcc_create_map(m.type, m.name.encode(), m.key_size, m.value_size,
                                   m.max_entries, m.flags), f"creating map {m.name}")
        for p in image.progs:
            code = bytearray(p.insns)
            for index, map_name in p.slots:
                at = index * INSN
                code[at + 4:at + 8] = loaded.maps[map_name].to_bytes(4, "little", signed=True)
            loaded.progs[p.name] = bpf_maps._check(
                lib.bcc_prog_load(p.type, p.name.encode(), bytes(code), len(code),
                                  image.license.encode(), image.kern_version, 0, None, 0),
                f"loading program {p.name}")
    except (bpf_maps.BpfCallError, KeyError, OverflowError) as err:
        loaded.close()
        raise bpf_maps.BpfCallError(getattr(err, "errno", 0) or 0,
                                    f"the kept program was refused ({err})") from None
    return loaded


# ------------------------------------------------------------------ storage


def _directory() -> str | None:
    if os.environ.get("PROFILER_NO_PROGRAM_CACHE"):
        return None
    symbols = default_directory()
    return os.path.join(os.path.dirname(symbols), "bpf") if symbols else None


def read(key: str) -> Image | None:
    """The kept image for `key`, if the directory and the file are ours alone
    (checked on the descriptors read from, so nothing can be swapped in)."""
    directory = _directory()
    if directory is None:
        return None
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not ours_alone(os.fstat(dfd), stat.S_IFDIR):
            return None
        fd = os.open(key + ".json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        if not ours_alone(os.fstat(fd), stat.S_IFREG):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            doc = json.loads(f.read())
        image = Image(
            maps=tuple(MapSpec(str(m["name"]), int(m["type"]), int(m["key_size"]),
                               int(m["value_size"]), int(m["max_entries"]), int(m["flags"]))
                       for m in doc["maps"]),
            progs=tuple(ProgSpec(str(p["name"]), int(p["type"]), bytes.fromhex(p["insns"]),
                                 tuple((int(i), str(n)) for i, n in p["slots"]))
                        for p in doc["progs"]),
            license=str(doc["license"]), kern_version=int(doc["kern_version"]))
        return image if doc["format"] == FORMAT and _valid(image) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # damaged: compiled again and written anew
    finally:
        os.close(fd)


def write(key: str, image: Image) -> None:
    directory = _directory()
    if directory is None:
        return
    doc = {"format": FORMAT, "license": image.license, "kern_version": image.kern_version,
           "maps": [dataclasses.asdict(m) for m in image.maps],
           "progs": [{"name": p.name, "type": p.type, "insns": p.insns.hex(),
                      "slots": [list(s) for s in p.slots]} for p in image.progs]}
    try:
        _make_private(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, os.path.join(directory, key + ".json"))
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # unwritable: the next run compiles again


def _make_private(directory: str) -> None:
    """Create the missing levels of `directory` readable by us alone (makedirs
    gives only the last level its mode)."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        os.mkdir(path, 0o700)
