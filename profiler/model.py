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
from profiler.maps import MapEntry

FORMAT = "profiler-raw"
VERSION = 1


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
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise OutputError(f"not a raw profile (invalid JSON: {err})",
                              "give a file written by 'profiler record -o FILE.json'") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise OutputError("not a raw profile (no 'format: profiler-raw')",
                              "give a file written by 'profiler record -o FILE.json'")
        if doc.get("version") != VERSION:
            raise OutputError(f"raw profile version {doc.get('version')} is not supported "
                              f"(this profiler reads version {VERSION})",
                              "record it again with this version of the profiler")
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
