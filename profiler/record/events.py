"""Perf events: a name -> (perf type, config), the perf_event_attr we build
for it, and asking the kernel whether it can be opened.

The same code path opens every event (cpu-clock and cycles alike); only the
type/config pair differs. `build_attr` is pure and unit-tested; `probe` and
`open_event` make the perf_event_open(2) system call through ctypes.

Besides perf's generic names, every PMU the kernel registers in
/sys/bus/event_source/devices is asked for its named events, written
`pmu/name/` as perf writes them (or `pmu/term=value,.../`), and their bits
placed where the PMU's format files say.
"""
from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import platform
import re
import struct

from profiler.errors import UnsupportedEventError, UsageError
from profiler.options import Sampling
from profiler.record.pmus import Pmu, encode_terms, parse_terms, read_pmus

# include/uapi/linux/perf_event.h
TYPE_HARDWARE, TYPE_SOFTWARE, TYPE_TRACEPOINT, TYPE_HW_CACHE, TYPE_RAW = 0, 1, 2, 3, 4

HARDWARE = {
    "cycles": 0, "cpu-cycles": 0, "instructions": 1, "cache-references": 2,
    "cache-misses": 3, "branches": 4, "branch-instructions": 4, "branch-misses": 5,
    "bus-cycles": 6, "stalled-cycles-frontend": 7, "stalled-cycles-backend": 8,
    "ref-cycles": 9,
}
SOFTWARE = {
    "cpu-clock": 0, "task-clock": 1, "page-faults": 2, "faults": 2,
    "context-switches": 3, "cs": 3, "cpu-migrations": 4, "migrations": 4,
    "minor-faults": 5, "major-faults": 6, "alignment-faults": 7, "emulation-faults": 8,
}
CACHES = {"L1-dcache": 0, "L1-icache": 1, "LLC": 2, "dTLB": 3, "iTLB": 4,
          "branch": 5, "node": 6}
CACHE_OPS = {"load": 0, "store": 1, "prefetch": 2}
CACHE_RESULTS = {"access": 0, "miss": 1}
_RAW = re.compile(r"r([0-9a-fA-F]{1,16})\Z")
_PMU_EVENT = re.compile(r"([A-Za-z0-9_.-]+)/([^/]*)/?\Z")
# Events that open on every kernel but say little about where time goes:
# not offered as alternatives when an event is refused.
_NOT_SUGGESTED = {"alignment-faults", "emulation-faults"}

# perf_event_attr.flags bits
FLAG_DISABLED = 1 << 0
FLAG_FREQ = 1 << 10
ATTR_SIZE = 128  # PERF_ATTR_SIZE_VER7

PERF_FLAG_FD_CLOEXEC = 1 << 3
IOC_ENABLE = 0x2400  # _IO('$', 0)
IOC_DISABLE = 0x2401  # _IO('$', 1)
IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
_SYSCALL = {"x86_64": 298, "aarch64": 241, "i686": 336, "ppc64le": 319,
            "s390x": 331, "riscv64": 241}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    name: str
    type: int
    config: int
    config1: int = 0  # PMU-specific extra bits (sysfs format "config1:...")
    config2: int = 0
    cpus: tuple[int, ...] = ()  # the only CPUs its PMU counts on; () = any


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerfEventAttr:
    """The fields of perf_event_attr that we set; everything else is zero."""

    type: int
    config: int
    config1: int = 0
    config2: int = 0
    sample_period: int = 0  # when freq is False
    sample_freq: int = 0  # when freq is True
    freq: bool = False
    disabled: bool = True  # enabled with an ioctl once the BPF program is attached
    extra_flags: int = 0  # other bits of the flags word (mmap, comm, task, ...)
    sample_type: int = 0  # PERF_SAMPLE_* (with sample_id_all: what ends each record)

    @property
    def flags(self) -> int:
        return (FLAG_DISABLED if self.disabled else 0) | (FLAG_FREQ if self.freq else 0) | \
            self.extra_flags

    def pack(self) -> bytes:
        """The struct as the kernel reads it (PERF_ATTR_SIZE_VER7)."""
        head = struct.pack("=IIQQQQQIIQQ", self.type, ATTR_SIZE, self.config,
                           self.sample_freq if self.freq else self.sample_period,
                           self.sample_type, 0, self.flags, 0, 0, self.config1, self.config2)
        return head + bytes(ATTR_SIZE - len(head))


def cache_event_names() -> dict[str, int]:
    """perf's names for the generic hardware-cache events -> config."""
    names = {}
    for cache, cid in CACHES.items():
        for op, oid in CACHE_OPS.items():
            names[f"{cache}-{op}s"] = cid | (oid << 8) | (CACHE_RESULTS["access"] << 16)
            names[f"{cache}-{op}-misses"] = cid | (oid << 8) | (CACHE_RESULTS["miss"] << 16)
    return names


def known_event_names() -> list[str]:
    """Every symbolic name we accept, in a stable order (software first)."""
    return [*SOFTWARE, *HARDWARE, *cache_event_names()]


# ---------------------------------------------------------------- PMU events


def _pmu_event(name: str, pmus: dict[str, Pmu] | None) -> Event | None:
    """`pmu/event/` or `pmu/term=value,.../` as an Event; None if `name` is not
    written that way; UnsupportedEventError if the PMU or event is unknown."""
    match = _PMU_EVENT.match(name)
    if not match:
        return None
    pmu_name, inner = match.groups()
    pmus = read_pmus() if pmus is None else pmus
    pmu = pmus.get(pmu_name)
    if pmu is None:
        raise UnsupportedEventError(
            f"unknown PMU {pmu_name!r} in event {name!r}",
            f"PMUs here: {', '.join(sorted(pmus)) or 'none'}; 'profiler list-events' "
            "lists their events")
    try:
        config = encode_terms(pmu, parse_terms(inner, pmu.events))
    except ValueError as err:
        raise UnsupportedEventError(
            f"cannot build event {name!r}: {err}",
            f"named events of {pmu_name}: {', '.join(sorted(pmu.events)) or 'none'}") from None
    return Event(name=name, type=pmu.type, config=config[0], config1=config[1],
                 config2=config[2], cpus=pmu.cpus)


def pmu_event_names(pmus: dict[str, Pmu]) -> list[str]:
    return [f"{p.name}/{e}/" for p in pmus.values() for e in p.events]


def resolve_event(name: str, pmus: dict[str, Pmu] | None = None) -> Event:
    """Event name -> perf type/config; UnsupportedEventError for unknown names.
    `pmus`: the sysfs PMUs (read when a `pmu/event/` name needs them)."""
    if name in SOFTWARE:
        return Event(name=name, type=TYPE_SOFTWARE, config=SOFTWARE[name])
    if name in HARDWARE:
        return Event(name=name, type=TYPE_HARDWARE, config=HARDWARE[name])
    caches = cache_event_names()
    if name in caches:
        return Event(name=name, type=TYPE_HW_CACHE, config=caches[name])
    raw = _RAW.match(name)
    if raw:
        return Event(name=name, type=TYPE_RAW, config=int(raw.group(1), 16))
    event = _pmu_event(name, pmus)
    if event is not None:
        return event
    raise UnsupportedEventError(
        f"unknown event {name!r}",
        "run 'profiler list-events' for the events this machine supports; "
        "raw PMU codes are written rNNNN (hex), PMU events pmu/event/")


def build_attr(event: Event, sampling: Sampling) -> PerfEventAttr:
    """The perf_event_attr for sampling `event` (disabled until attached)."""
    common = dict(type=event.type, config=event.config, config1=event.config1,
                  config2=event.config2)
    if sampling.frequency is not None:
        return PerfEventAttr(**common, sample_freq=sampling.frequency, freq=True)
    return PerfEventAttr(**common, sample_period=sampling.period or 1)


# ---------------------------------------------------------------- syscalls

_libc = ctypes.CDLL(None, use_errno=True)


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int) -> int:
    """Open a perf event; returns the fd or raises OSError with the kernel's errno."""
    number = _SYSCALL.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"perf_event_open: unknown syscall number on {platform.machine()}")
    buf = ctypes.create_string_buffer(attr.pack(), ATTR_SIZE)
    fd = _libc.syscall(ctypes.c_long(number), buf, ctypes.c_int(pid), ctypes.c_int(cpu),
                       ctypes.c_int(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def ioctl(fd: int, request: int, arg: int = 0) -> None:
    if _libc.ioctl(ctypes.c_int(fd), ctypes.c_ulong(request), ctypes.c_ulong(arg)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_REASONS = {
    errno.ENOENT: "the kernel has no such event here (no PMU provides it)",
    errno.ENODEV: "no PMU on this machine provides it",
    errno.EOPNOTSUPP: "the PMU cannot sample it (no overflow interrupt)",
    errno.EINVAL: "the kernel rejects its attributes",
    errno.EACCES: "permission denied (needs CAP_PERFMON or root)",
    errno.EPERM: "permission denied (needs CAP_PERFMON or root)",
    errno.EBUSY: "the PMU is busy (another user holds it exclusively)",
}


def kernel_reason(err: OSError) -> str:
    name = errno.errorcode.get(err.errno or 0, str(err.errno))
    why = _REASONS.get(err.errno or 0, err.strerror or "")
    return f"perf_event_open failed with {name}: {why}"


def probe(attr: PerfEventAttr, cpu: int) -> OSError | None:
    """None if the kernel opens the event system-wide on `cpu`, else its error."""
    try:
        fd = perf_event_open(attr, -1, cpu)
    except OSError as err:
        return err
    os.close(fd)
    return None


def supported_events(sampling: Sampling, cpu: int,
                     pmus: dict[str, Pmu] | None = None) -> list[tuple[Event, OSError | None]]:
    """Every event we can name, each with the kernel's answer to opening it
    for sampling on `cpu` (None: it opens): perf's generic names (aliases
    included), then each PMU's own named events."""
    pmus = read_pmus() if pmus is None else pmus
    out = []
    for name in [*known_event_names(), *pmu_event_names(pmus)]:
        try:
            event = resolve_event(name, pmus)
        except UnsupportedEventError:  # a PMU event whose terms we cannot encode
            continue
        out.append((event, probe(build_attr(event, sampling), cpu)))
    return out


def max_sample_rate() -> int | None:
    try:
        with open("/proc/sys/kernel/perf_event_max_sample_rate") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def check_rate(sampling: Sampling) -> None:
    """-F above the kernel's limit: refused with the limit, not as an
    unsupported event (the kernel says only EINVAL)."""
    limit = max_sample_rate()
    if sampling.frequency is not None and limit and sampling.frequency > limit:
        raise UsageError(
            f"-F {sampling.frequency} is above this kernel's limit of {limit} samples "
            "per second (kernel.perf_event_max_sample_rate)",
            f"use -F {limit} or less, or raise the limit as root: "
            f"sysctl -w kernel.perf_event_max_sample_rate={sampling.frequency}")


def check_event(event: Event, sampling: Sampling, cpu: int) -> PerfEventAttr:
    """The attr for `event`, or UnsupportedEventError naming the kernel's reason
    and the events that would work. Called before any BPF is compiled."""
    check_rate(sampling)
    attr = build_attr(event, sampling)
    err = probe(attr, cpu)
    if err is None:
        return attr
    if err.errno in (errno.EACCES, errno.EPERM):
        from profiler.errors import NotPermittedError
        raise NotPermittedError(f"cannot open perf event {event.name!r}: {kernel_reason(err)}",
                                "run as root (or grant CAP_PERFMON and CAP_BPF)")
    reason = kernel_reason(err)
    if err.errno == errno.EINVAL and probe(dataclasses.replace(attr, freq=False, sample_freq=0,
                                                               sample_period=0), cpu) is None:
        reason += "; it can be counted but not sampled (its PMU has no overflow interrupt)"
    working = [e.name for e, failure in supported_events(sampling, cpu)
               if failure is None and e.name in _SUGGESTED]
    raise UnsupportedEventError(
        f"event {event.name!r} is not supported on this machine: {reason}",
        "use one of: " + ", ".join(working) if working else
        "no sampling event can be opened here")


_SUGGESTED = {name for name in known_event_names()
              if name not in ("faults", "cs", "migrations", "cpu-cycles", "branch-instructions")
              and name not in _NOT_SUGGESTED}
