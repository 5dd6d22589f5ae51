"""The raw profile: what recording produces, before symbolizing.

Saved as versioned JSON (`profiler record -o x.json`), read back by
`profiler report`. Stacks are addresses, leaf first, one key per distinct
stack; memory maps were snapshotted while the processes were alive.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import signal
from typing import Mapping

from profiler.errors import OutputError
from profiler.model.maps import MapEntry

FORMAT = "profiler-raw"
VERSION = 1
# The last (root-side) address of a user stack whose copy ended before the
# stack did (--call-graph dwarf): its outer frames are missing. Shown as
# "[truncated]"; no code lives at this address.
TRUNCATED = 0xFFFF_FFFF_FFFF_FFF0
# The one address of a stack standing for every distinct stack the run found
# after it held --max-stacks of them (their samples are kept, counted under
# their process, and reported). Shown as "[stack limit]".
OVER_STACK_LIMIT = 0xFFFF_FFFF_FFFF_FFF1
STACK_LIMIT_FRAME = "[stack limit]"
# Limits a saved profile is held to when read back (`check_document`): what
# a recording can write, so that a damaged or hostile file costs bounded
# memory and time and is refused with one message.
MAX_RAW_BYTES = 512 << 20  # the JSON text
MAX_DEPTH_LIMIT = 4096  # info.max_depth itself
EXTRA_FRAMES = 2  # marker frames unwinding may add beyond info.max_depth


@dataclasses.dataclass(frozen=True, kw_only=True)
class CountRecord:
    pid: int
    tid: int  # 0 unless recorded per thread
    comm: str
    user_stack: int  # hash into RawProfile.stacks; 0 = no user frames
    kernel_stack: int  # 0 = no kernel frames
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class MapsSnapshot:
    time: float  # seconds since the recording started
    entries: tuple[MapEntry, ...]  # executable mappings only


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProcessInfo:
    pid: int
    snapshots: tuple[MapsSnapshot, ...] = ()
    kernel_thread: bool = False  # no user memory at all
    exited: bool = False  # gone before the recording ended
    foreign_mounts: bool = False  # in another mount namespace (a container) than the profiler
    vdso: str = ""  # key of its vDSO image in RawProfile.vdso_images


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecordingInfo:
    target: str
    event: str
    event_type: int
    event_config: int
    frequency: int | None
    period: int | None
    duration: float  # seconds actually recorded
    cpus: tuple[int, ...]
    sides: str  # "both", "user", "kernel"
    per_thread: bool
    started: float  # Unix time
    command_status: int | None = None  # exit status of `-- COMMAND`; -N: killed by signal N
    command_stopped: bool = False  # still running when the run ended, so we stopped it
    stopped_by: str = ""  # "duration", "signal", "command exited", "targets exited"
    max_depth: int = 127
    call_graph: str = "fp"  # how user stacks were walked: "fp" or "dwarf"
    stack_copy: int = 0  # dwarf: bytes of user stack copied per sample
    max_stacks: int = 0  # distinct stacks the run kept at most (0: not recorded)

    def describe_rate(self) -> str:
        return f"{self.frequency} Hz" if self.frequency else f"every {self.period} events"

    def describe_command_end(self) -> str | None:
        """How `-- COMMAND` ended, in words; None for other targets."""
        if self.command_status is None:
            return None
        text = describe_exit(self.command_status)
        if self.command_stopped:
            text += " (still running when the run ended: stopped by the profiler)"
        return text


def describe_exit(status: int) -> str:
    """An exit code as os.waitstatus_to_exitcode gives it, in words."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = f"signal {-status}"
    return f"killed by {name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RawProfile:
    info: RecordingInfo
    counts: tuple[CountRecord, ...]
    stacks: Mapping[int, tuple[int, ...]]
    processes: Mapping[int, ProcessInfo]
    stats: Mapping[str, int]  # samples and in-kernel losses, by name
    # JIT perf-map entries (start, size, name) covering sampled addresses, by
    # pid: read while recording, since the map lives in the process's /tmp.
    jit: Mapping[int, tuple[tuple[int, int, str], ...]] = dataclasses.field(default_factory=dict)
    # The processes' vDSO images (a few KB; one per ABI), by content digest.
    vdso_images: Mapping[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def total_counted(self) -> int:
        return sum(c.count for c in self.counts)

    # ------------------------------------------------------------ JSON

    def to_json(self) -> str:
        doc = {
            "format": FORMAT, "version": VERSION,
            "info": dataclasses.asdict(self.info),
            "counts": [dataclasses.astuple(c) for c in self.counts],
            "stacks": {str(h): list(a) for h, a in sorted(self.stacks.items())},
            "processes": {str(pid): {
                "kernel_thread": p.kernel_thread, "exited": p.exited,
                "foreign_mounts": p.foreign_mounts, "vdso": p.vdso,
                "snapshots": [{"time": s.time, "entries": [dataclasses.astuple(e) for e in s.entries]}
                              for s in p.snapshots]}
                for pid, p in sorted(self.processes.items())},
            "stats": dict(sorted(self.stats.items())),
            "jit": {str(pid): [list(e) for e in entries]
                    for pid, entries in sorted(self.jit.items())},
            "vdso_images": {k: base64.b64encode(v).decode()
                            for k, v in sorted(self.vdso_images.items())},
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RawProfile":
        if len(text) > MAX_RAW_BYTES:
            raise OutputError(f"raw profile is larger than {MAX_RAW_BYTES >> 20} MB: refused",
                              "a recording writes far less; give a raw profile it wrote")
        try:
            doc = json.loads(text)
        except RecursionError:
            raise OutputError("not a raw profile (JSON nested too deeply)",
                              "give a file written by 'profiler record -o FILE.json'") from None
        except ValueError as err:  # JSONDecodeError, and ints of thousands of digits
            raise OutputError(f"not a raw profile (invalid JSON: {err})",
                              "give a file written by 'profiler record -o FILE.json'") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise OutputError("not a raw profile (no 'format: profiler-raw')",
                              "give a file written by 'profiler record -o FILE.json'")
        if doc.get("version") != VERSION:
            raise OutputError(f"raw profile version {doc.get('version')} is not supported "
                              f"(this profiler reads version {VERSION})",
                              "record it again with this version of the profiler")
        problem = check_document(doc)
        if problem:
            raise OutputError(f"raw profile is damaged ({problem})", "record it again")
        try:
            info = doc["info"]
            info["cpus"] = tuple(info["cpus"])
            return cls(
                info=RecordingInfo(**info),
                counts=tuple(CountRecord(pid=c[0], tid=c[1], comm=c[2], user_stack=c[3],
                                         kernel_stack=c[4], count=c[5]) for c in doc["counts"]),
                stacks={int(h): tuple(a) for h, a in doc["stacks"].items()},
                processes={int(pid): ProcessInfo(
                    pid=int(pid), kernel_thread=p["kernel_thread"], exited=p["exited"],
                    foreign_mounts=bool(p.get("foreign_mounts", False)),
                    vdso=str(p.get("vdso", "")),
                    snapshots=tuple(MapsSnapshot(time=s["time"], entries=tuple(
                        MapEntry(start=e[0], end=e[1], perms=e[2], offset=e[3], dev=e[4],
                                 inode=e[5], path=e[6]) for e in s["entries"]))
                        for s in p["snapshots"]))
                    for pid, p in doc["processes"].items()},
                stats=dict(doc["stats"]),
                jit={int(pid): tuple((int(e[0]), int(e[1]), str(e[2])) for e in entries)
                     for pid, entries in doc.get("jit", {}).items()},
                vdso_images={str(k): base64.b64decode(v, validate=True)
                             for k, v in doc.get("vdso_images", {}).items()},
            )
        except (KeyError, TypeError, IndexError, ValueError) as err:  # base64 errors too
            raise OutputError(f"raw profile is damaged ({type(err).__name__}: {err})",
                              "record it again") from None


# ---------------------------------------------------------------- validation

_U64 = 1 << 64


def _is_int(x) -> bool:
    return type(x) is int  # bool is not a count


def _is_number(x) -> bool:
    return type(x) in (int, float) and x == x and abs(x) != float("inf")


def _field_check(type_text: str):
    """A check for a RecordingInfo field, from its annotation's text; a
    field added later with an unforeseen type gets a scalar check."""
    checks = {
        "str": lambda x: type(x) is str, "bool": lambda x: type(x) is bool,
        "int": _is_int, "float": _is_number,
        "int | None": lambda x: x is None or _is_int(x),
        "float | None": lambda x: x is None or _is_number(x),
        "str | None": lambda x: x is None or type(x) is str,
        "tuple[int, ...]": lambda x: type(x) is list and len(x) <= 65536 and
        set(map(type, x)) <= {int},
    }
    return checks.get(type_text.replace("'", ""), lambda x: x is None or
                      type(x) in (str, bool, int, float))


def _check_info(info) -> str:
    if type(info) is not dict:
        return "info is not an object"
    fields = {f.name: f for f in dataclasses.fields(RecordingInfo)}
    for name, value in info.items():
        field = fields.get(name)
        if field is None:
            return f"unknown info field {name!r}"
        if not _field_check(str(field.type))(value):
            return f"info field {name!r} has a wrong type"
    depth = info.get("max_depth", 127)
    if not 1 <= depth <= MAX_DEPTH_LIMIT:
        return f"info.max_depth {depth} is not between 1 and {MAX_DEPTH_LIMIT}"
    if any(not 0 <= c < 1 << 20 for c in info.get("cpus", ())):
        return "info.cpus holds an impossible CPU number"
    return ""


def _is_id(x) -> bool:
    return _is_int(x) and 0 <= x < _U64


def _addresses(x, depth: int) -> str:
    if type(x) is not list:
        return "is not a list"
    if len(x) > depth:
        return f"has {len(x)} frames, more than the recorder's {depth}"
    if x and (not set(map(type, x)) <= {int} or min(x) < 0 or max(x) >= _U64):
        return "holds something other than addresses"
    return ""


def _object(doc, key: str, required: bool = True):
    value = doc.get(key, None if required else {})
    return value if type(value) is dict else None


def check_document(doc: dict) -> str:
    """What is wrong with a parsed raw profile's types and sizes, in a few
    words ("" when nothing is): counts are non-negative integers, a stack
    has at most info.max_depth (+ EXTRA_FRAMES) addresses, ids are u64.
    Iterative, so that no input makes it recurse."""
    problem = _check_info(doc.get("info"))
    if problem:
        return problem
    depth = doc["info"].get("max_depth", 127) + EXTRA_FRAMES
    counts = doc.get("counts")
    if type(counts) is not list:
        return "counts is not a list"
    for c in counts:
        if type(c) is not list or len(c) != 6:
            return "a count record is not a list of 6 fields"
        pid, tid, comm, user, kernel, count = c
        if not (_is_id(pid) and _is_id(tid) and type(comm) is str and len(comm) <= 4096):
            return "a count record has a wrong pid, tid or comm"
        if not (_is_int(user) and _is_int(kernel)):
            return "a count record's stack ids are not integers"
        if not _is_id(count):
            return f"count {count!r} is not a non-negative integer"
    stacks = _object(doc, "stacks")
    if stacks is None:
        return "stacks is not an object"
    for key, addresses in stacks.items():
        if not key.lstrip("-").isdigit() or len(key) > 40:
            return f"stack id {key[:40]!r} is not a number"
        problem = _addresses(addresses, depth)
        if problem:
            return f"stack {key} {problem}"
    processes = _object(doc, "processes")
    if processes is None:
        return "processes is not an object"
    for key, proc in processes.items():
        if not key.isdigit() or len(key) > 20 or type(proc) is not dict:
            return f"process {key[:40]!r} is not a pid with an object"
        flags = [proc.get(k, False) for k in ("kernel_thread", "exited", "foreign_mounts")]
        if any(type(f) is not bool for f in flags) or type(proc.get("vdso", "")) is not str:
            return f"process {key} has flags of a wrong type"
        snapshots = proc.get("snapshots")
        if type(snapshots) is not list:
            return f"process {key} has no list of snapshots"
        for snap in snapshots:
            if type(snap) is not dict or not _is_number(snap.get("time")) or \
                    type(snap.get("entries")) is not list:
                return f"a memory-map snapshot of process {key} is damaged"
            for e in snap["entries"]:
                if type(e) is not list or len(e) != 7 or not all(map(_is_id, (e[0], e[1], e[3], e[5]))) \
                        or not all(type(s) is str for s in (e[2], e[4], e[6])):
                    return f"a memory-map entry of process {key} is damaged"
    stats = _object(doc, "stats")
    if stats is None or not all(_is_id(v) for v in stats.values()):
        return "stats are not non-negative integers by name"
    jit = _object(doc, "jit", required=False)
    if jit is None:
        return "jit is not an object"
    for key, entries in jit.items():
        if not key.isdigit() or type(entries) is not list or not all(
                type(e) is list and len(e) == 3 and _is_id(e[0]) and _is_id(e[1]) and
                type(e[2]) is str for e in entries):
            return f"JIT entries of process {key[:40]!r} are damaged"
    images = _object(doc, "vdso_images", required=False)
    if images is None or not all(type(v) is str for v in images.values()):
        return "vdso_images are not base64 texts by name"
    return ""
