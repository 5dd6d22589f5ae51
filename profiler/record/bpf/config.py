"""The -D flags that configure profile.bpf.c for a run's options, and the
program text as BCC compiles it (shown by --print-program)."""
from __future__ import annotations

import pathlib

from profiler.options import CallGraph, RecordOptions, StackSides, TargetKind
from profiler.record.cpus import possible_cpus

SOURCE = pathlib.Path(__file__).resolve().parent / "profile.bpf.c"


def max_stack_depth() -> int:
    try:
        return max(1, min(int(pathlib.Path("/proc/sys/kernel/perf_event_max_stack")
                              .read_text()), 127))
    except (OSError, ValueError):
        return 127


def pid_max() -> int:
    try:
        return int(pathlib.Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 4194304  # the kernel's limit on 64-bit


def defines(options: RecordOptions, by_cgroup: bool = False) -> dict[str, int]:
    """The -D flags that configure profile.bpf.c for these options.

    `by_cgroup`: `-- COMMAND` runs in a cgroup of its own; filter on it, so
    its children are sampled too (else only the command's own process is).
    Per-run values (the pid, the cgroup id) are not flags but `config`
    entries, so that a compiled program can be kept and used again.
    """
    kind = options.target.kind
    dwarf = options.call_graph_used is CallGraph.DWARF
    # With dwarf, user space counts: the count maps are not used.
    counts = 1 if dwarf else options.stack_storage_size
    return {
        "MAX_DEPTH": max_stack_depth(),
        "STACK_STORAGE_SIZE": options.stack_storage_size,
        "COUNTS_SIZE": counts,
        "SLOTS": 1 << (counts - 1).bit_length(),
        "PID_WORDS": (pid_max() + 63) // 64,
        "FILTER_TGID": int(kind is TargetKind.PIDS or (kind is TargetKind.COMMAND and not by_cgroup)),
        "FILTER_CGROUP": int(by_cgroup),
        "FILTER_TID": int(kind is TargetKind.TIDS),
        "WANT_USER": int(options.sides is not StackSides.KERNEL),
        "WANT_KERNEL": int(options.sides is not StackSides.USER),
        "PER_THREAD": int(options.per_thread),
        "INCLUDE_IDLE": int(options.include_idle),
        "CALL_GRAPH_DWARF": int(dwarf),
        **({"STACK_COPY": options.stack_copy, "COPY_RING_PAGES": copy_ring_pages(options),
            "COPY_CPUS": possible_cpus()} if dwarf else {}),
    }


COPY_RING_SECONDS = 0.5  # of samples the copy ring holds while user space is busy
COPY_RING_MIN, COPY_RING_MAX = 1 << 20, 64 << 20  # bytes


def copy_ring_pages(options: RecordOptions) -> int:
    """Pages of the copy ring: half a second of full copies from every CPU
    at the sampling frequency (a power of 2, 1 to 64 MiB); the largest for
    an event period. Copies are mostly shorter than the limit, so it holds
    more in practice."""
    if not options.sampling.frequency:
        # An event period (-c): its rate is unknown, and events such as page
        # faults come in bursts faster than any reader: the largest ring.
        return COPY_RING_MAX // 4096
    cpus = len(options.cpus) or possible_cpus()
    want = options.sampling.frequency * cpus * (options.stack_copy + 80) * COPY_RING_SECONDS
    size = 1 << max(0, int(want) - 1).bit_length()
    return max(COPY_RING_MIN, min(COPY_RING_MAX, size)) // 4096


def program_text(flags: dict[str, int]) -> str:
    """The program as BCC compiles it: the -D flags, then the source file."""
    head = "".join(f"#define {k} {v}\n" for k, v in flags.items())
    return f"// compiled with: {' '.join(f'-D{k}={v}' for k, v in flags.items())}\n" \
           + head + SOURCE.read_text()
