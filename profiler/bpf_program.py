"""The only module that imports bcc (lazily): compile, attach, read maps.

`BpfSampler` owns everything loaded into the kernel for one run; `close()`
(also via `with`) detaches and unloads all of it on every exit path.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import os
import pathlib
import tempfile
import time
from typing import Callable, Iterable, Iterator

from profiler import events
from profiler.errors import BccMissingError, CompileError, NotPermittedError
from profiler.events import PerfEventAttr
from profiler.options import RecordOptions, StackSides, TargetKind

SOURCE = pathlib.Path(__file__).resolve().parent / "bpf" / "profile.bpf.c"
SAMPLE_FN = b"prof_sample"
EXEC_FN = b"prof_exec"
PROGRAM_NAMES = ("prof_sample", "prof_exec")  # as bpftool lists them
# Index order of the `stats` array in profile.bpf.c.
STATS = ("samples", "lost_stack_store_full", "lost_counts_map_full",
         "user_walk_errors", "kernel_walk_errors", "process_notices_lost")
NOTICE_NEW, NOTICE_EXEC = 1, 2
STACK_ID_TAG = 1 << 63  # count keys: a stack-trace map bucket id, not a content hash
CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21
SWAP_GRACE = 0.005  # seconds a program that read the old live flag may still run


@dataclasses.dataclass(frozen=True)
class CountKey:
    pid: int
    tid: int
    comm: str
    user_hash: int
    kernel_hash: int


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


def defines(options: RecordOptions, cgroup_id: int | None = None) -> dict[str, int]:
    """The -D flags that configure profile.bpf.c for these options.

    `cgroup_id`: `-- COMMAND` runs in a cgroup of its own; filter on it, so
    its children are sampled too (else only the command's own process is).
    """
    kind = options.target.kind
    by_cgroup = cgroup_id is not None
    return {
        "MAX_DEPTH": max_stack_depth(),
        "STACK_STORAGE_SIZE": options.stack_storage_size,
        "COUNTS_SIZE": options.stack_storage_size,
        "PID_WORDS": (pid_max() + 63) // 64,
        "FILTER_TGID": int(kind is TargetKind.PIDS or (kind is TargetKind.COMMAND and not by_cgroup)),
        "FILTER_CGROUP": int(by_cgroup),
        "SINGLE_TARGET": options.target.ids[0] if len(options.target.ids) == 1 else 0,
        "TARGET_CGROUP_ID": cgroup_id or 0,
        "FILTER_TID": int(kind is TargetKind.TIDS),
        "WANT_USER": int(options.sides is not StackSides.KERNEL),
        "WANT_KERNEL": int(options.sides is not StackSides.USER),
        "PER_THREAD": int(options.per_thread),
        "INCLUDE_IDLE": int(options.include_idle),
    }


def program_text(flags: dict[str, int]) -> str:
    """The program as BCC compiles it: the -D flags, then the source file."""
    head = "".join(f"#define {k} {v}\n" for k, v in flags.items())
    return f"// compiled with: {' '.join(f'-D{k}={v}' for k, v in flags.items())}\n" \
           + head + SOURCE.read_text()


def check_privileges() -> None:
    if os.geteuid() == 0:
        return
    try:
        status = pathlib.Path("/proc/self/status").read_text()
        cap = int(next(l.split()[1] for l in status.splitlines() if l.startswith("CapEff")), 16)
    except (OSError, StopIteration, ValueError):
        cap = 0
    if not (cap >> CAP_BPF & 1 and cap >> CAP_PERFMON & 1 and cap >> CAP_SYS_ADMIN & 1):
        raise NotPermittedError(
            "recording needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN to load BPF and "
            "read other processes' memory maps)",
            "run it as root, e.g. 'sudo .venv/bin/profiler record ...'")


def import_bcc():
    try:
        import bcc  # noqa: the one import of bcc in the project
    except ImportError as err:
        raise BccMissingError(
            f"the BCC Python module cannot be imported ({err})",
            "run 'make setup' (installs Debian's python3-bpfcc) and use the project's "
            ".venv/bin/python, which sees the system site-packages") from None
    return bcc


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what libbcc/clang write to fd 2 (they bypass sys.stderr)."""
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def _release_freed_memory() -> None:
    """Give clang's freed working memory back to the system after compiling.

    LLVM frees most of what it used, but glibc keeps it in its free lists:
    about 60 MB that would otherwise stay resident for the whole run and add
    to the memory symbolizing and rendering use afterwards.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc: nothing to trim
        pass


def _compiler_message(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip() and "modprobe" not in l]
    errors = [l for l in lines if "error" in l.lower()]
    return "\n".join((errors or lines)[:12]) or "(the compiler printed nothing)"


class BpfSampler:
    """Compiled program, attached perf events and the maps of one run."""

    def __init__(self, options: RecordOptions, kernel_source: str | None,
                 cgroup_id: int | None = None) -> None:
        self.flags = defines(options, cgroup_id)
        self._bcc = import_bcc()
        self._perf_fds: list[int] = []
        self._live = 0
        self._bpf = None
        env_before = os.environ.get("BCC_KERNEL_SOURCE")
        if kernel_source:
            os.environ["BCC_KERNEL_SOURCE"] = kernel_source
        try:
            gc.collect()  # what parsing and importing left behind, before clang's peak
            _release_freed_memory()
            with _captured_stderr() as log:
                try:
                    self._bpf = self._bcc.BPF(
                        text=SOURCE.read_text(),
                        cflags=[f"-D{k}={v}" for k, v in self.flags.items()])
                    self._prog = self._bpf.load_func(SAMPLE_FN, self._bcc.BPF.PERF_EVENT)
                    self._bpf.attach_raw_tracepoint(tp=b"sched_process_exec", fn_name=EXEC_FN)
                except Exception as err:  # BCC raises bare Exception
                    failure = str(err)
                else:
                    failure = None
            if failure is None:
                _release_freed_memory()
            if failure is not None:
                self.close()
                if "super-user" in failure or "Operation not permitted" in failure:
                    raise NotPermittedError(f"the kernel refused the BPF program: {failure}",
                                            "run as root (CAP_BPF and CAP_PERFMON)")
                raise CompileError(
                    f"BCC could not build the BPF program ({failure}):\n"
                    + _compiler_message(log[0]),
                    "check the kernel headers ('make setup'); run with --print-program "
                    "to see the program as compiled")
        finally:
            if kernel_source:
                if env_before is None:
                    os.environ.pop("BCC_KERNEL_SOURCE", None)
                else:
                    os.environ["BCC_KERNEL_SOURCE"] = env_before

    # -------------------------------------------------------------- set-up

    def set_targets(self, ids: list[int]) -> None:
        table = self._bpf["targets"]
        for i in ids:
            word = ctypes.c_int(i // 64)
            table[word] = ctypes.c_uint64(table[word].value | 1 << (i % 64))

    def on_notice(self, callback: Callable[[int, int], None]) -> None:
        """callback(pid, kind) for each process notice, run during poll()."""
        table = self._bpf["notices"]

        def handle(_ctx, data, _size):
            event = table.event(data)
            callback(int(event.pid), int(event.kind))
            return 0

        table.open_ring_buffer(handle)

    def attach(self, attr: PerfEventAttr, cpus: list[int]) -> None:
        """Open `attr` on every CPU, attach the program, then enable them all."""
        for cpu in cpus:
            fd = events.perf_event_open(attr, -1, cpu)
            self._perf_fds.append(fd)
            events.ioctl(fd, events.IOC_SET_BPF, self._prog.fd)
        for fd in self._perf_fds:
            events.ioctl(fd, events.IOC_ENABLE)

    def stop(self) -> None:
        """Stop sampling (the maps stay readable)."""
        for fd in self._perf_fds:
            with contextlib.suppress(OSError):
                events.ioctl(fd, events.IOC_DISABLE)

    # -------------------------------------------------------------- reading

    def poll(self, timeout: float) -> None:
        self._bpf.ring_buffer_poll(int(timeout * 1000))

    def stats(self) -> dict[str, int]:
        table = self._bpf["stats"]
        return {name: int(sum(table[ctypes.c_int(i)])) for i, name in enumerate(STATS)}

    def swap_and_drain_counts(self) -> list[tuple[CountKey, int]]:
        """Make the other counts map live, then empty the one just retired."""
        old = self._live
        self._live ^= 1
        self._bpf["control"][ctypes.c_int(0)] = ctypes.c_uint32(self._live)
        time.sleep(SWAP_GRACE)
        return self._drain_counts(f"counts{old}")

    def drain_all_counts(self) -> list[tuple[CountKey, int]]:
        return self._drain_counts("counts0") + self._drain_counts("counts1")

    def _drain_counts(self, name: str) -> list[tuple[CountKey, int]]:
        return _drain(self._bpf[name], lambda k, v: (self._count_key(k), _int(v)))

    @staticmethod
    def _count_key(k) -> CountKey:
        return CountKey(int(k.pid), int(k.tid), k.comm.decode("utf-8", "replace"),
                        int(k.user_hash), int(k.kernel_hash))

    def resolve_stack_ids(self, keys: Iterable[int]) -> dict[int, tuple[int, ...]]:
        """Frames of the bucket-id keys given (STACK_ID_TAG | id), leaf first.

        Buckets are never cleared during the run, so an id read now names the
        stack the sample saw; each id needs reading once.
        """
        table = self._bpf["stack_ids"]
        found = {}
        for key in keys:
            if key & STACK_ID_TAG:
                try:
                    found[key] = tuple(table.walk(key & ~STACK_ID_TAG))
                except KeyError:
                    continue
        return found

    def drain_stacks(self) -> dict[int, tuple[int, ...]]:
        """Copy out and delete every stored stack: hash -> addresses, leaf first."""
        return dict(_drain(self._bpf["stacks"],
                           lambda k, v: (_int(k), tuple(v.ips[: int(v.nr)]))))

    # -------------------------------------------------------------- teardown

    def close(self) -> None:
        self.stop()
        for fd in self._perf_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._perf_fds = []
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> "BpfSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _int(value) -> int:
    """A ctypes scalar or an int (batch reads give ints) as an int."""
    return int(getattr(value, "value", value))


def _drain(table, convert: Callable) -> list:
    """Look up and delete all entries (the batch call, then any stragglers),
    converting each (key, value) to Python values before BCC reuses buffers."""
    try:
        batch = list(table.items_lookup_and_delete_batch())
    except Exception:  # kernels without batch operations: the slow path below
        batch = []
    items = [convert(k, v) for k, v in batch]
    for key in list(table.keys()):
        try:
            value = table[key]
        except KeyError:
            continue
        items.append(convert(key, value))
        with contextlib.suppress(KeyError):
            del table[key]
    return items
