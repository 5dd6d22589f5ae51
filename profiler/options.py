"""Options of `profiler record`: frozen keyword-only dataclasses, defaults here.

The CLI only translates argv into these; library code never sees argparse.
"""
from __future__ import annotations

import dataclasses
import enum


class TargetKind(enum.Enum):
    SYSTEM = "system"  # every process (idle excluded unless include_idle)
    PIDS = "pids"  # these processes, all their threads
    TIDS = "tids"  # these threads only
    COMMAND = "command"  # a command started by the profiler


class StackSides(enum.Enum):
    BOTH = "both"
    USER = "user"  # -U
    KERNEL = "kernel"  # -K


class CallGraph(enum.Enum):
    """How user stacks are walked (perf's --call-graph spelling)."""

    FP = "fp"  # frame pointers, in the kernel: cheap, cut short by code built without them
    DWARF = "dwarf"  # user stack copies unwound with the objects' CFI: whole stacks


class Grouping(enum.Enum):
    """What the first frame of a folded stack names."""

    COMM = "comm"  # process name
    PROCESS = "process"  # comm-PID (--per-pid)
    THREAD = "thread"  # comm-PID/TID (--per-thread)


class OutputFormat(enum.Enum):
    SVG = "svg"
    FOLDED = "folded"
    RAW = "raw"  # the RawProfile as JSON
    PPROF = "pprof"  # google/pprof's profile.proto, gzipped
    SPEEDSCOPE = "speedscope"  # speedscope's JSON file format


DEFAULT_FREQUENCY = 99
DEFAULT_STACK_COPY = 16384  # bytes of user stack copied per sample (--call-graph dwarf)
MAX_STACK_COPY = 65528  # perf's limit too
DEFAULT_STACK_STORAGE = 16384
# Distinct stacks a run keeps (0.4 KB each with fp, 0.55 KB with dwarf, as
# bench/memory.py measures: 110 to 140 MB at most): what bounds the
# recorder's memory on a workload that never stops finding new stacks.
# Later new stacks are merged into one "[stack limit]" frame.
DEFAULT_MAX_STACKS = 1 << 18
DEFAULT_DRAIN_INTERVAL = 1.0  # seconds
DEFAULT_OUTPUT = "profile.svg"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sampling:
    """Exactly one of frequency (Hz) and period (events per sample)."""

    frequency: int | None = DEFAULT_FREQUENCY
    period: int | None = None

    def __post_init__(self) -> None:
        if (self.frequency is None) == (self.period is None):
            raise ValueError("exactly one of frequency and period")

    def describe(self) -> str:
        return f"{self.frequency} Hz" if self.frequency else f"every {self.period} events"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    kind: TargetKind = TargetKind.SYSTEM
    ids: tuple[int, ...] = ()  # PIDs or TIDs
    command: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind is TargetKind.PIDS:
            return "PID " + ",".join(map(str, self.ids))
        if self.kind is TargetKind.TIDS:
            return "TID " + ",".join(map(str, self.ids))
        if self.kind is TargetKind.COMMAND:
            return " ".join(self.command)
        return "all processes"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecordOptions:
    target: Target = Target()
    event: str = "cpu-clock"
    sampling: Sampling = Sampling()
    duration: float | None = None  # seconds; None: until Ctrl-C / SIGTERM / command exit
    cpus: tuple[int, ...] = ()  # () = all online CPUs
    sides: StackSides = StackSides.BOTH
    include_idle: bool = False
    grouping: Grouping = Grouping.COMM
    stack_storage_size: int = DEFAULT_STACK_STORAGE
    max_stacks: int = DEFAULT_MAX_STACKS  # distinct stacks the run keeps
    drain_interval: float = DEFAULT_DRAIN_INTERVAL  # longest time between map drains
    show_progress: bool = False
    print_program: bool = False  # print the BPF program as compiled
    # None: dwarf for process targets, fp for the whole system (whose cost
    # in copies grows with the number of CPUs)
    call_graph: CallGraph | None = None
    stack_copy: int = DEFAULT_STACK_COPY  # bytes, with dwarf

    @property
    def per_thread(self) -> bool:
        return self.grouping is Grouping.THREAD

    @property
    def call_graph_used(self) -> CallGraph:
        if self.call_graph is not None:
            return self.call_graph
        return CallGraph.FP if self.target.kind is TargetKind.SYSTEM else CallGraph.DWARF


DEFAULT_DEBUG_DIRS = ("/usr/lib/debug",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SymbolizeOptions:
    demangle: bool = True  # C++ and Rust names made readable
    debug_dirs: tuple[str, ...] = DEFAULT_DEBUG_DIRS  # roots of separate debug files
    # Inlined calls (from DWARF) as frames of their own; False: the function
    # the code was inlined into only (--no-inline).
    inline: bool = True
    # Frames named "function (file:line)": the call's line for callers, the
    # sampled line for the leaf (--srcline). Only folded stacks and the
    # flame graph spell it; pprof and speedscope carry lines anyway.
    srcline: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputOptions:
    path: str = DEFAULT_OUTPUT  # "-" = stdout
    format: OutputFormat = OutputFormat.SVG
    grouping: Grouping = Grouping.COMM
    symbolize: SymbolizeOptions = SymbolizeOptions()
