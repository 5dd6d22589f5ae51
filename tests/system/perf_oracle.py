"""The oracle of the dwarf-mode tests: perf's own `--call-graph dwarf`.

`perf record --call-graph dwarf,SIZE` copies the user stack and registers
per sample, as `profiler record --call-graph dwarf` does; `perf script`
unwinds the copies (libdw or libunwind, with .eh_frame/.debug_frame) and
names the frames. What it prints is turned into root-first tuples of
function names, one per sample, kernel frames apart from user frames.

Checked against linux-perf 6.1 (Debian): `perf script -F comm,tid,ip,sym,dso
--no-inline` prints, per sample, a header line (`comm  tid`) and one
indented line per frame, leaf first: `ADDR SYMBOL (DSO)`, `[unknown]` for
a symbol it could not name, a blank line after the last frame.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import os
import re
import shutil
import subprocess
from typing import Iterable, Mapping, Sequence

from conftest import require

STACK_SIZE = 16384  # the profiler's default copy size: both see the same bytes
_FRAME = re.compile(r"^\s+([0-9a-f]+) (.*?)(?: \(([^()]*)\))?$")
_KERNEL_DSO = re.compile(r"^\[(kernel\.kallsyms|guest\.kernel\.kallsyms)[^\]]*\]$|\.ko(\.\w+)?$")


@dataclasses.dataclass(frozen=True)
class Frame:
    address: int
    symbol: str  # '[unknown]' where perf could not name it
    dso: str     # '[unknown]' where perf could not map it

    @property
    def kernel(self) -> bool:
        return bool(_KERNEL_DSO.search(self.dso))


@dataclasses.dataclass(frozen=True)
class Sample:
    comm: str
    tid: int
    frames: tuple[Frame, ...]  # root first, as the folded format writes them

    @property
    def user(self) -> tuple[str, ...]:
        return tuple(f.symbol for f in self.frames if not f.kernel)

    @property
    def kernel(self) -> tuple[str, ...]:
        return tuple(f.symbol for f in self.frames if f.kernel)


def available() -> bool:
    return shutil.which("perf") is not None


def require_perf() -> None:
    require(available(), "needs perf (linux-perf; make setup installs it)")
    done = subprocess.run(["perf", "version"], capture_output=True, text=True)
    require(done.returncode == 0, f"perf does not run: {done.stderr.strip()}")


def record(output: str, *, command: Sequence[str] | None = None, pid: int | None = None,
           duration: float | None = None, frequency: int = 499,
           stack_size: int = STACK_SIZE, event: str = "cpu-clock",
           timeout: float = 120) -> subprocess.CompletedProcess:
    """`perf record --call-graph dwarf,SIZE` of a command or a running process
    into `output`. cpu-clock, as the profiler samples by default (this
    machine may have no hardware PMU for perf's default `cycles`)."""
    if (command is None) == (pid is None):
        raise ValueError("one of command and pid")
    args = ["perf", "record", "-q", "-e", event, "-F", str(frequency),
            "--call-graph", f"dwarf,{stack_size}", "-o", output]
    if pid is not None:
        args += ["-p", str(pid)]
        if duration is not None:
            args += ["--", "sleep", str(duration)]
    else:
        args += ["--", *command]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not os.path.exists(output):
        raise AssertionError(f"perf record failed ({done.returncode}): {done.stderr}")
    return done


def script_text(data: str, timeout: float = 300) -> str:
    done = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso",
                           "--no-inline"], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"perf script failed ({done.returncode}): {done.stderr}")
    return done.stdout


def parse_script(text: str) -> list[Sample]:
    """Samples of `perf script -F comm,tid,ip,sym,dso` output (pure)."""
    samples: list[Sample] = []
    comm, tid, frames = None, 0, []

    def flush():
        if comm is not None:
            samples.append(Sample(comm, tid, tuple(reversed(frames))))

    for line in text.splitlines():
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if not line[0].isspace():
            flush()
            # `comm  tid` (a comm may hold spaces: the tid is the last word)
            head, _, last = line.rstrip().rpartition(" ")
            comm, tid, frames = head.strip(), int(last), []
            continue
        m = _FRAME.match(line)
        if m is None:
            raise AssertionError(f"unexpected perf script line: {line!r}")
        frames.append(Frame(int(m.group(1), 16), m.group(2), m.group(3) or "[unknown]"))
    flush()
    return samples


def perf_profile(output: str, **kwargs) -> list[Sample]:
    """Record (see `record`) and return perf's samples."""
    record(output, **kwargs)
    return parse_script(script_text(output))


def user_stacks(samples: Iterable[Sample], comm: str | None = None) -> collections.Counter:
    """Counts of root-first user-frame tuples (of one comm when given)."""
    return collections.Counter(s.user for s in samples if comm is None or s.comm == comm)


def usable_samples(samples: Iterable[Sample]) -> tuple[list[Sample], int]:
    """The samples perf unwound, and how many it did not: a user frame perf
    cannot even map (symbol and dso `[unknown]`) means its unwinding went
    astray (a return address read from the wrong slot) or stopped in
    unmapped memory, and is no reference for anyone's unwinder. A frame in a
    known object without a name (a local function of a stripped library:
    libgcc_s's unwinder) is kept; it is unnamed, not lost."""
    kept, dropped = [], 0
    for s in samples:
        if any(f.dso == "[unknown]" for f in s.frames if not f.kernel):
            dropped += 1
        else:
            kept.append(s)
    return kept, dropped


# ---------------------------------------------------------------- names

_VERSION = re.compile(r"@@?[A-Z][A-Za-z0-9_.]*$")  # foo@@GLIBC_2.34 (not foo@plt)
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_QUALIFIERS = re.compile(r"\)(?: const| volatile| &&| &)+$")
_CLONE = re.compile(r"( \[clone \.[\w.]+\])+$")  # c++filt's `f(int) [clone .cold]`
_OFFSET = re.compile(r"^(?!\[)(.*)\+0x[0-9a-f]+$")  # not [unmapped]+0x..: that is lost
UNNAMED = "<unnamed>"
_BUILD_ID = re.compile(r"Build ID: ([0-9a-f]+)")


def strip_params(name: str) -> str:
    """`ns::f(int, char const*) const` -> `ns::f`: perf prints C++ names
    without their parameters, c++filt with them. GCC's outlined parts
    (`f(int) [clone .cold]`) are the function's: perf's names drop the
    suffix with the parameters."""
    s = _QUALIFIERS.sub(")", _CLONE.sub("", name))
    if not s.endswith(")"):
        return name
    depth = 0
    for i in range(len(s) - 1, -1, -1):
        if s[i] == ")":
            depth += 1
        elif s[i] == "(":
            depth -= 1
            if depth == 0:
                return s[:i] or name
    return name


def _debug_file(path: str) -> str | None:
    done = subprocess.run(["readelf", "-n", path], capture_output=True, text=True)
    m = _BUILD_ID.search(done.stdout)
    if m is None:
        return None
    bid = m.group(1)
    debug = f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug"
    return debug if os.path.exists(debug) else None


@functools.lru_cache(maxsize=None)
def _alias_groups(path: str) -> tuple[tuple[str, ...], ...]:
    """binutils' view of `path`: the names of each address that has
    several (glibc's __libc_start_main, __libc_start_main_impl,
    __libc_start_main@@GLIBC_2.34, ...), from .dynsym and the symbol table
    of the debug file (or of the file itself)."""
    by_addr: dict[int, set[str]] = collections.defaultdict(set)
    runs = [["nm", "-D", "--defined-only", path]]
    debug = _debug_file(path)
    runs.append(["nm", "--defined-only", debug or path])
    for args in runs:
        done = subprocess.run(args, capture_output=True, text=True)
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TtWwi":
                by_addr[int(parts[0], 16)].add(_VERSION.sub("", parts[2]))
    return tuple(tuple(sorted(g)) for g in by_addr.values() if len(g) > 1)


class Names:
    """Normalizes frame names the same way on both sides, so that what is
    compared is the unwinding, not the naming: symbol versions and Rust hashes
    dropped, C++ parameter lists dropped, aliases (several names at one
    address, per binutils' nm) mapped to one of them (the shortest), and a
    frame in a known object without a function's name (ours
    `module+0xOFFSET`, perf's `[unknown]` in a known object) or in a PLT
    stub (perf makes up `name@plt`, the profiler's symbol sources do not)
    reduced to UNNAMED: the frame is there on both sides, which is what
    unwinding is about."""

    def __init__(self, objects: Iterable[str] = ()):
        alias: dict[str, str] = {}
        clash: set[str] = set()
        for path in sorted(set(objects)):
            if not os.path.isfile(path):
                continue
            for group in _alias_groups(path):
                rep = min(group, key=lambda n: (len(n), n))
                for name in group:
                    if alias.get(name, rep) != rep:
                        clash.add(name)
                    alias[name] = rep
        self.alias: Mapping[str, str] = {k: v for k, v in alias.items() if k not in clash}

    def __call__(self, name: str) -> str:
        if _OFFSET.match(name) or name.endswith("@plt"):
            return UNNAMED
        name = _RUST_HASH.sub("", _VERSION.sub("", name))
        name = strip_params(name)
        return self.alias.get(name, name)

    def perf_frame(self, frame: Frame) -> str:
        if frame.symbol == "[unknown]" and frame.dso != "[unknown]":
            return UNNAMED
        return self(frame.symbol)


def user_objects(samples: Iterable[Sample]) -> set[str]:
    """The files perf saw user frames in (for `Names`)."""
    return {f.dso for s in samples for f in s.frames
            if not f.kernel and f.dso.startswith("/")}
