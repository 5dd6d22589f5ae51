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
import os
import re
import shutil
import subprocess
from typing import Iterable, Sequence

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
