"""JIT symbols from perf maps: /tmp/perf-PID.map, one `START SIZE name` a line.

Node (--perf-basic-prof), Java agents and Python 3.12 (-X perf) append a line
for each piece of code they compile. The file is read as the process sees
it: its own /tmp (/proc/PID/root/tmp) and its own pid inside its pid
namespace. Like perf, a map owned by neither root nor the process's user is
refused: anyone can write /tmp, and names are shown to whoever reads the
profile.

`parse_perf_map(text)` is pure; `open_perf_map(pid)` does the I/O.
"""
from __future__ import annotations

import bisect
import dataclasses
import errno
import heapq
import os
import stat

JIT_SUFFIX = "_[j]"
# The memory the entries of a run's JIT maps may take, all maps together: the
# profiled user writes the maps, we choose what they cost us. Lines beyond it
# are counted (not parsed) and reported once. An entry costs about
# ENTRY_COST bytes plus its line; a line longer than MAX_LINE is skipped.
MAX_PERF_MAP_MEMORY = 16 << 20
ENTRY_COST = 256
MAX_LINE = 4096
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PerfMap:
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    names: tuple[str, ...]

    def lookup(self, address: int) -> str | None:
        hit = self.find(address)
        return hit[2] if hit else None

    def find(self, address: int) -> tuple[int, int, str] | None:
        """The (start, size, name) entry containing `address`."""
        i = bisect.bisect_right(self.starts, address) - 1
        if i < 0 or address >= self.ends[i]:
            return None
        return self.starts[i], self.ends[i] - self.starts[i], self.names[i]

    def __len__(self) -> int:
        return len(self.starts)


def parse_perf_map(text: str) -> PerfMap:
    """Later lines win where entries overlap: a JIT reuses the addresses of
    code it threw away, and the last entry is the code that lives there now.
    Malformed lines are skipped."""
    parser = _Parser(budget=None)
    parser.feed(text.encode("utf-8", "surrogateescape").split(b"\n"))
    return _flatten(parser.entries)


class _Parser:
    """Lines -> (start, end, sequence, name) entries, within a budget of
    bytes (None: unbounded); what does not fit is counted in `dropped`."""

    def __init__(self, budget: int | None) -> None:
        self.entries: list[tuple[int, int, int, str]] = []
        self.left = budget
        self.dropped = 0
        self._seq = 0

    @property
    def full(self) -> bool:
        return self.left is not None and self.left <= 0

    def feed(self, lines) -> None:
        for line in lines:
            self._seq += 1
            if self.left is not None and self.left <= 0:
                self.dropped += 1
                continue
            if len(line) > MAX_LINE:
                continue
            fields = line.split(None, 2)
            if len(fields) < 3:
                continue
            try:
                start, size = int(fields[0], 16), int(fields[1], 16)
            except ValueError:
                continue
            if size <= 0 or start < 0:
                continue
            if self.left is not None:
                self.left -= ENTRY_COST + len(line)
            name = fields[2].strip().decode("utf-8", "replace")
            self.entries.append((start, start + size, self._seq, name))


def from_entries(entries) -> PerfMap:
    """A map from (start, size, name) entries that do not overlap (a profile's)."""
    return _flatten([(s, s + n, 0, name) for s, n, name in entries])


def _flatten(entries: list[tuple[int, int, int, str]]) -> PerfMap:
    """(start, end, sequence, name) -> non-overlapping ranges, each named by
    the latest entry covering it."""
    entries.sort()
    if all(a[1] <= b[0] for a, b in zip(entries, entries[1:])):  # the usual case
        return PerfMap(tuple(e[0] for e in entries), tuple(e[1] for e in entries),
                       tuple(e[3] for e in entries))
    points = sorted({p for e in entries for p in e[:2]})
    active: list[tuple[int, int, str]] = []  # heap of (-sequence, end, name)
    starts, ends, names = [], [], []
    i = 0
    for lo, hi in zip(points, points[1:]):
        while i < len(entries) and entries[i][0] <= lo:
            heapq.heappush(active, (-entries[i][2], entries[i][1], entries[i][3]))
            i += 1
        while active and active[0][1] <= lo:  # the latest has ended: the one before shows
            heapq.heappop(active)
        if not active:
            continue
        seq, _end, name = active[0]
        if ends and ends[-1] == lo and names[-1] == name:
            ends[-1] = hi
        else:
            starts.append(lo)
            ends.append(hi)
            names.append(name)
    return PerfMap(tuple(starts), tuple(ends), tuple(names))


class PerfMapRefused(Exception):
    """The map exists but must not be trusted (message says why)."""


def _status(pid: int) -> tuple[int, int | None]:
    """(its pid in its own pid namespace, its real uid), from one read of
    /proc/PID/status: the map's name and whom it must belong to."""
    ns_pid, uid = pid, None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    ns_pid = int(line.split()[-1])
                elif line.startswith("Uid:"):
                    uid = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return ns_pid, uid


def namespace_pid(pid: int) -> int:
    """The pid the process has in its own pid namespace (its perf map's name)."""
    return _status(pid)[0]


def open_perf_map(pid: int) -> int | None:
    """A descriptor of the process's perf map, None when it has none.
    Raises PerfMapRefused for a map owned by someone else, a symlink or
    anything but a regular file."""
    ns_pid, uid = _status(pid)
    name = f"perf-{ns_pid}.map"
    try:  # the process's /tmp, never a symlink out of it
        tmp = os.open(f"/proc/{pid}/root/tmp", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                      os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                     dir_fd=tmp)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise PerfMapRefused(f"JIT map /tmp/{name} of process {pid} is a symbolic link; "
                                 "its frames are left unnamed (perf refuses it too)") from None
        return None
    finally:
        os.close(tmp)
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "is not a regular file"
    elif st.st_uid not in (0, uid):
        why = f"is owned by uid {st.st_uid}, not by root or the process's user ({uid})"
    if why:
        os.close(fd)
        raise PerfMapRefused(f"JIT map /tmp/{name} of process {pid} {why}; "
                             "its frames are left unnamed (perf refuses it too)")
    return fd


def read_fd(fd: int, budget: int = MAX_PERF_MAP_MEMORY) -> tuple[PerfMap, int]:
    """Everything written to the map so far, read from the start in chunks,
    keeping entries within `budget` bytes (see ENTRY_COST); and the number of
    lines beyond the budget, counted but not kept. Memory stays within the
    budget and a chunk whatever the file holds: no copy of the whole file,
    no line longer than MAX_LINE."""
    parser = _Parser(budget)
    pos, carry, skipping = 0, b"", False
    while True:
        try:
            chunk = os.pread(fd, _CHUNK, pos)
        except OSError:
            break
        if not chunk:
            break
        pos += len(chunk)
        if parser.full:  # count the rest, parse nothing
            parser.dropped += chunk.count(b"\n")
            continue
        lines = chunk.split(b"\n")
        if skipping:  # the rest of an over-long line
            if len(lines) == 1:
                continue
            lines[0], skipping = b"", False
        else:
            lines[0] = carry + lines[0]
        carry = lines.pop()  # the unfinished last line (b"" after a newline)
        if len(carry) > MAX_LINE:
            carry, skipping = b"", True
        parser.feed(lines)
    if carry and not skipping:  # a last line without its newline (being written?)
        parser.feed([carry])
    return _flatten(parser.entries), parser.dropped
