"""The -D flags that configure profile.bpf.c for a run's options, and the
program text as BCC compiles it (shown by --print-program)."""
from __future__ import annotations

import functools
import os
import pathlib

from profiler.options import CallGraph, RecordOptions, StackSides, TargetKind
from profiler.record.cpus import online_cpus, possible_cpus

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


# Set to 1 (tests), the program sends through perf buffers as on a kernel
# without BPF ring buffers.
FORCE_PERF_OUTPUT = "PROFILER_TEST_PERF_BUFFER"
# The most a perf buffer's record carries: its size is a 16-bit field
# (8-byte header, then the 4-byte raw size and the data, padded to 8), less
# the 72-byte copy head, rounded down to whole words.
PERF_MAX_STACK_COPY = 65440
NOTICE_PERF_PAGES = 8  # per CPU: notices are 8 bytes, a few per process
# Set to 1 (tests), the program does without bpf_task_pt_regs() as on a
# kernel before 5.15.
FORCE_NO_TASK_PT_REGS = "PROFILER_TEST_NO_TASK_PT_REGS"


@functools.cache
def _has_ring_buffers() -> bool:
    from profiler.errors import BccMissingError
    from profiler.record.bpf.maps import has_ring_buffers
    try:
        return has_ring_buffers()
    except BccMissingError:  # loading the program says so, with the remedy
        return True


@functools.cache
def _has_task_pt_regs() -> bool:
    """Whether the kernel knows the helper, by its name in the kernel's own
    type information (the helper, 5.15, also needs BTF to be of use)."""
    try:
        return b"BPF_FUNC_task_pt_regs\0" in pathlib.Path("/sys/kernel/btf/vmlinux").read_bytes()
    except OSError:
        return False


def task_pt_regs() -> bool:
    return os.environ.get(FORCE_NO_TASK_PT_REGS) != "1" and _has_task_pt_regs()


def perf_output() -> bool:
    """Whether the program must send through perf buffers (BPF_PERF_OUTPUT)."""
    return os.environ.get(FORCE_PERF_OUTPUT) == "1" or not _has_ring_buffers()


def defines(options: RecordOptions, by_cgroup: bool = False) -> dict[str, int]:
    """The -D flags that configure profile.bpf.c for these options.

    `by_cgroup`: `-- COMMAND` runs in a cgroup of its own; filter on it, so
    its children are sampled too (else only the command's own process is).
    Per-run values (the pid, the cgroup id) are not flags but `config`
    entries, so that a compiled program can be kept and used again.
    """
    kind = options.target.kind
    dwarf = options.call_graph_used is CallGraph.DWARF
    perf = perf_output()
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
        "OUTPUT_PERF": int(perf),
        "HAVE_TASK_PT_REGS": int(task_pt_regs()),
        **({"STACK_COPY": min(options.stack_copy, PERF_MAX_STACK_COPY) if perf
            else options.stack_copy,
            "COPY_RING_PAGES": copy_ring_pages(options), "COPY_CPUS": possible_cpus()}
           if dwarf else {}),
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


def perf_copy_buffer(flags: dict[str, int]) -> tuple[int, int]:
    """(pages per CPU, records per wake-up) of the copies' perf buffers:
    the copy ring's bytes shared among the online CPUs (room for two whole
    records at least, a power of 2); each CPU wakes the reader once it may
    have filled a quarter of its buffer, as the ring's CPUs do."""
    # perf's header, the raw size, the copy head, the stack, padding to 8
    record = 8 + 4 + 72 + flags["STACK_COPY"] + 4
    pages = max(flags["COPY_RING_PAGES"] // max(1, len(online_cpus())), -(-2 * record // 4096))
    pages = 1 << (pages - 1).bit_length()
    return pages, max(1, pages * 4096 // (4 * record))


def program_text(flags: dict[str, int]) -> str:
    """The program as BCC compiles it: the -D flags, then the source file."""
    head = "".join(f"#define {k} {v}\n" for k, v in flags.items())
    return f"// compiled with: {' '.join(f'-D{k}={v}' for k, v in flags.items())}\n" \
           + head + SOURCE.read_text()
