"""record(options) -> Recording: run the BPF sampler, drain its maps during
the run, snapshot processes while they live, and stop cleanly on every path.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator

from profiler.record import events
from profiler.errors import Interrupted, TargetError, UnsupportedEventError, UsageError
from profiler.record.kheaders import plan_headers
from profiler.record import cgroup as cgroup_module
from profiler.record.cgroup import CommandCgroup
from profiler.record.cpus import online_cpus
from profiler.record.launcher import Launcher
from profiler.model.raw import CountRecord, RawProfile, RecordingInfo
from profiler.options import RecordOptions, TargetKind
from profiler.record.procwatch import FileKeeper, ProcessTracker, alive
from profiler.binary.addresses import code_address

POLL = 0.1  # seconds: how often the loop wakes to check stop conditions
PROGRESS_EVERY = 1.0  # seconds
# Sampled processes' memory maps are read again at most this often, however
# often the drains come (reading takes the process's mmap lock).
REFRESH_EVERY = 1.0  # seconds
SHORTEST_DRAIN = 0.1  # seconds
FIRST_DRAIN = 0.25  # seconds: soon, to learn how fast the stack maps fill
# Share of a generation's fullest map (stack-trace buckets, counts, stacks
# stored by content) at a drain above which the next drain comes sooner (a
# fuller stack map means more collisions; a full map, lost samples), and
# below which it comes later again, up to the option's interval.
FILL_HIGH, FILL_LOW = 1 / 8, 1 / 32


@dataclasses.dataclass(frozen=True)
class Progress:
    elapsed: float
    remaining: float | None
    samples: int


@dataclasses.dataclass
class Recording:
    """The raw profile plus the files kept open for symbolizing it."""

    profile: RawProfile
    files: FileKeeper

    def close(self) -> None:
        self.files.close()


def _tgid_of(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("Tgid:"))
    except (OSError, StopIteration, ValueError):
        return tid


def check_targets(options: RecordOptions) -> None:
    kind, ids = options.target.kind, options.target.ids
    for i in ids:
        if not os.path.exists(f"/proc/{i}/status"):
            what = "process" if kind is TargetKind.PIDS else "thread"
            raise TargetError(f"no such {what}: {i}",
                              "check the id with 'ps -e' (threads: 'ps -eL')")
        tgid = _tgid_of(i)
        if kind is TargetKind.PIDS and tgid != i:
            raise TargetError(f"{i} is a thread of process {tgid}, not a process",
                              f"use -p {tgid} for the whole process or -t {i} for this thread")


def check_cpus(cpus: tuple[int, ...], event: events.Event | None = None) -> list[int]:
    """The CPUs to sample on: those asked for (all online by default), and
    of those only the ones the event's PMU counts on (a hybrid CPU's core
    type), as perf does."""
    online = online_cpus()
    chosen = sorted(set(cpus)) if cpus else online
    bad = [c for c in chosen if c not in online]
    if bad:
        raise UsageError(f"CPU {','.join(map(str, bad))} is not online",
                         f"online CPUs: {','.join(map(str, online))}")
    if event is not None and event.cpus:
        chosen = [c for c in chosen if c in event.cpus]
        if not chosen:
            raise UsageError(f"event {event.name!r} is counted only on CPU "
                             f"{','.join(map(str, event.cpus))}",
                             "choose some of those with -C, or leave -C out")
    return chosen


@contextlib.contextmanager
def _stop_on_signals(flag: dict) -> Iterator[None]:
    """SIGINT and SIGTERM end the run (the output is still written)."""
    def handler(signum, _frame):
        flag["signal"] = signal.Signals(signum).name

    saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


# Tests only: PROFILER_TEST_SIGNAL_AT=STAGE[:SIGNAL] makes record() signal
# itself (SIGINT by default) once start-up reaches STAGE.
TEST_SIGNAL_ENV = "PROFILER_TEST_SIGNAL_AT"
STAGES = ("start", "launcher", "cgroup", "load", "attach")


def _test_signal(stage: str) -> None:
    want, _, name = os.environ.get(TEST_SIGNAL_ENV, "").partition(":")
    if want == stage:
        os.kill(os.getpid(), getattr(signal, name or "SIGINT"))


def _interrupted(flag: dict) -> None:
    """Before sampling: a signal received ends start-up here."""
    if flag.get("signal"):
        raise Interrupted(flag["signal"])


class _Command:
    """`-- COMMAND`'s launcher and cgroup, owned together: closing stops the
    command (or lets its never-released child go), then removes the cgroup."""

    def __init__(self) -> None:
        self.launcher: Launcher | None = None
        self.cgroup: CommandCgroup | None = None

    def close(self) -> None:
        try:
            if self.launcher is not None:
                self.launcher.stop()
        finally:
            if self.cgroup is not None:
                self.cgroup.close()


def record(options: RecordOptions,
           on_progress: Callable[[Progress], None] | None = None) -> Recording:
    flag: dict = {}
    with _stop_on_signals(flag), contextlib.ExitStack() as owned:
        _test_signal("start")
        from profiler.record.bpf import program as bpf_program  # bcc itself only to compile
        from profiler.record.bpf.compiler import check_privileges
        check_privileges()
        event = events.resolve_event(options.event)
        cpus = check_cpus(options.cpus, event)
        check_targets(options)
        attr = events.check_event(event, options.sampling, cpus[0])  # before anything is loaded
        plan = plan_headers()
        _interrupted(flag)
        command = _Command()
        owned.callback(command.close)
        if options.target.kind is TargetKind.COMMAND:
            command.launcher = Launcher(options.target.command)
            _test_signal("launcher")
            _interrupted(flag)
            command.cgroup = _command_cgroup(command.launcher)
            _test_signal("cgroup")
            _interrupted(flag)
        launcher, cgroup = command.launcher, command.cgroup
        tracker = ProcessTracker(watch_forks=True)
        owned.callback(tracker.stop_watching)
        try:
            sampler = bpf_program.BpfSampler(options, plan, cgroup.id if cgroup else None)
            with sampler:
                _test_signal("load")
                _interrupted(flag)
                if os.environ.get(TEST_SIGNAL_ENV, "").startswith("attach"):
                    sampler.attach = _then_signal(sampler.attach, "attach")
                return _run(options, sampler, attr, cpus, event, launcher, tracker, flag,
                            on_progress)
        except BaseException:
            tracker.files.close()
            raise


def _then_signal(attach, stage: str):
    """The test hook after attaching (which _run does)."""
    def attach_then_signal(*args, **kwargs):
        attach(*args, **kwargs)
        _test_signal(stage)
    return attach_then_signal


def _command_cgroup(launcher: Launcher) -> CommandCgroup | None:
    """Put the (not yet started) command in a cgroup of its own, if we can;
    first remove the cgroups that profilers killed before us left behind."""
    cgroup_module.remove_stale()
    cgroup = CommandCgroup.create(cgroup_module.own_name())
    if cgroup is not None and not cgroup.add(launcher.pid):
        cgroup.close()
        cgroup = None
    if cgroup is None:
        print("profiler: warning: no cgroup v2 hierarchy to run the command in; only its "
              "own process is profiled, not the processes it starts", file=sys.stderr)
    return cgroup


def _warm_up() -> None:
    """Import what writing the output needs while the run samples.

    The main thread mostly waits in the kernel during a run; loading the
    symbolizer and renderer then, rather than after it, takes their import
    time off the end of a short profile. Not before compiling: clang's peak
    memory would add to theirs.
    """
    import flamegraph.api  # noqa: F401  (svgwrite)
    import profiler.export.write  # noqa: F401  (the symbolizer)


def _copy_unwinder(sampler, tracker):
    """The CFI of the sampled processes, through the maps and files the
    tracker keeps of them. Dwarf mode: each stack copy is unwound as it is
    read. fp mode: frameless leaves get the caller the walk skipped."""
    from profiler.unwind.copies import CopyUnwinder
    from profiler.unwind.frameless import return_address_offset
    from profiler.binary.cache import default_cache
    unwinder = CopyUnwinder(tracker.entries, tracker.files.path_for, tracker.files.vdso_image,
                            reread=tracker.snapshot, max_depth=sampler.flags["MAX_DEPTH"],
                            cache=default_cache())
    if sampler.dwarf:
        sampler.on_copy(lambda c: unwinder.unwind(c.pid, c.ip, c.sp, c.fp, c.stack, c.lr))
    elif sampler.flags.get("WANT_USER"):
        sampler.on_leaf_rule(lambda pid, pc: return_address_offset(unwinder.row_at(pid, pc),
                                                                   unwinder.arch))
    return unwinder


def _run(options, sampler, attr, cpus, event, launcher, tracker, flag, on_progress) -> Recording:
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    kind = options.target.kind
    sampler.on_notice(lambda pid, k: tracker.notice(pid, exec_=k == 2))
    unwinder = _copy_unwinder(sampler, tracker)
    if kind in (TargetKind.PIDS, TargetKind.TIDS):
        sampler.set_targets(list(options.target.ids))
        for i in options.target.ids:
            tracker.snapshot(_tgid_of(i))
    if launcher is not None:
        sampler.set_targets([launcher.pid])
        tracker.snapshot(launcher.pid)  # the image before exec (a fork of ours)
    try:
        sampler.attach(attr, cpus)
    except OSError as err:  # the probe on one CPU passed; another refuses
        raise UnsupportedEventError(
            f"cannot sample {event.name!r} on every CPU asked for: {events.kernel_reason(err)}",
            "choose the CPUs with -C, or another event (see 'profiler list-events')") from None
    started_wall, t0 = time.time(), time.monotonic()
    if launcher is not None:
        launcher.release()
        tracker.notice(launcher.pid, exec_=True)

    counts: dict = {}
    interval = min(FIRST_DRAIN, options.drain_interval)
    next_drain = t0 + interval
    next_progress = t0 + PROGRESS_EVERY
    next_refresh = t0 + REFRESH_EVERY
    sampled: set[int] = set()  # processes sampled since their maps were last read
    stopped_by = ""
    while not stopped_by:
        now = time.monotonic()
        wake = min(POLL, next_drain - now)
        if options.duration is not None:  # end on time, not up to POLL late
            wake = min(wake, t0 + options.duration - now)
        sampler.poll(max(0.0, wake))
        tracker.service()
        now = time.monotonic()
        if flag.get("signal"):
            stopped_by = "signal " + flag["signal"]
        elif options.duration is not None and now - t0 >= options.duration:
            stopped_by = "duration"
        elif launcher is not None and launcher.poll() is not None:
            stopped_by = "command exited"
        elif kind is not TargetKind.SYSTEM and launcher is None and \
                not any(alive(i) for i in options.target.ids):
            stopped_by = "targets exited"
        elif now >= next_drain:  # (when stopping, the final drain takes all)
            drained = sampler.swap_and_drain()
            sampled |= _drain(drained, counts, tracker)
            if now >= next_refresh:
                tracker.refresh(sampled)
                sampled.clear()
                next_refresh = now + REFRESH_EVERY
            # What the run keeps (stacks, rows, snapshots) lives to its end:
            # the collector need not scan it again at every collection, which
            # would pause the unwinding of copies for milliseconds.
            gc.freeze()
            interval = next_drain_interval(interval, drained.fill, options.drain_interval)
            next_drain = time.monotonic() + interval
        if on_progress and not stopped_by and now >= next_progress:
            remaining = None if options.duration is None else max(0.0, options.duration - (now - t0))
            on_progress(Progress(now - t0, remaining, sampler.stats()["samples"]))
            next_progress = now + PROGRESS_EVERY
    sampler.stop()
    duration = time.monotonic() - t0
    sampler.poll(0)
    tracker.refresh(sampled | _drain(sampler.drain_all(), counts, tracker))
    stats = sampler.stats()
    if sampler.dwarf:
        stats["user_stacks_truncated"] = unwinder.truncated
        stats["unwind_errors"] = sampler.copy_errors
    tracker.finish()
    stats["mapping_records_lost"] = tracker.mapping_records_lost
    processes = tracker.processes()  # who exited during the run: before the command is stopped
    # Still running when -d or a signal ended the run: stopped here.
    command_stopped = launcher is not None and launcher.stop()

    info = RecordingInfo(
        target=options.target.describe(), event=event.name, event_type=event.type,
        event_config=event.config, frequency=options.sampling.frequency,
        period=options.sampling.period, duration=round(duration, 3), cpus=tuple(cpus),
        sides=options.sides.value, per_thread=options.per_thread, started=started_wall,
        command_status=launcher.poll() if launcher else None, command_stopped=command_stopped,
        stopped_by=stopped_by,
        max_depth=sampler.flags["MAX_DEPTH"],
        call_graph=options.call_graph_used.value,
        stack_copy=sampler.flags["STACK_COPY"] if sampler.dwarf else 0,
        max_stacks=options.max_stacks)
    records = tuple(CountRecord(pid=k.pid, tid=k.tid, comm=k.comm, user_stack=k.user_hash,
                                kernel_stack=k.kernel_hash, count=v)
                    for k, v in sorted(counts.items(), key=lambda kv: _sort_key(kv[0])))
    stacks = sampler.stacks()
    profile = RawProfile(info=info, counts=records, stacks=stacks,
                         processes=processes, stats=stats,
                         jit=_jit_entries(records, stacks, tracker.files.perf_maps()),
                         vdso_images=tracker.files.vdso_images())
    return Recording(profile=profile, files=tracker.files)


def next_drain_interval(current: float, fill: float, longest: float) -> float:
    """Seconds to the next drain, given how full the last one found its
    generation's maps: sooner when filling (many CPUs, high rates, many
    threads), back towards `longest` when nearly empty."""
    if fill > FILL_HIGH:
        return max(min(SHORTEST_DRAIN, longest), current / 2)
    if fill < FILL_LOW:
        return min(longest, current * 2)
    return current


def _jit_entries(records, stacks, perf_maps) -> dict[int, tuple[tuple[int, int, str], ...]]:
    """The perf-map entries that name sampled addresses, by pid: the whole
    map can be megabytes, the profile needs a few lines of it."""
    used: dict[int, set] = {}
    for rec in records:
        jit = perf_maps.get(rec.pid)
        if not jit:
            continue
        for i, address in enumerate(stacks.get(rec.user_stack, ())):  # leaf first
            hit = jit.find(code_address(address, leaf=i == 0))
            if hit is not None:
                used.setdefault(rec.pid, set()).add(hit)
    return {pid: tuple(sorted(entries)) for pid, entries in used.items()}


def _sort_key(k):
    return (k.pid, k.tid, k.comm, k.user_hash, k.kernel_hash)


def _drain(drained, counts, tracker) -> set[int]:
    """Merge drained counts, and snapshot processes seen for the first
    time. Returns the processes sampled, whose maps are due to be read again
    (a changed map gets a new snapshot)."""
    pids = set()
    for key, value in drained.counts:
        counts[key] = counts.get(key, 0) + value
        pids.add(key.pid)
    for pid in pids:
        if not tracker.known(pid):
            tracker.snapshot(pid)
    return pids
