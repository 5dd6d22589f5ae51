"""The BPF program of a run: compile (through compiler.py, the one module
that imports bcc) or load a kept image, attach, read maps and rings.

`BpfSampler` owns everything loaded into the kernel for one run; `close()`
(also via `with`) detaches and unloads all of it on every exit path.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import os
import re
import struct
import sys
import time
from typing import Callable

from profiler.record.bpf import copies
from profiler.record.bpf.compiler import (captured_stderr, compiler_message, import_bcc,
                                          release_freed_memory)
from profiler.record.bpf import image as bpf_image
from profiler.record.bpf import maps as bpf_maps
from profiler.record.bpf.config import (NOTICE_PERF_PAGES, SOURCE, defines, perf_copy_buffer,
                                        program_text)
from profiler.record.bpf.leaves import Judge, LeafCallers
from profiler.record.bpf.stackkeys import (MISSING_STACK, OVER_LIMIT, STACK_ID_TAG, StackKeys,
                                          from_bucket)
from profiler.record import events
from profiler.errors import CompileError, NotPermittedError
from profiler.record.events import PerfEventAttr
from profiler.record.kheaders import HeadersPlan, kernel_source
from profiler.options import RecordOptions

SAMPLE_FN = b"prof_sample"
EXEC_FN = b"prof_exec"
PROGRAM_NAMES = ("prof_sample", "prof_exec")  # as bpftool lists them
# Index order of the `stats` array in profile.bpf.c.
STATS = ("samples", "lost_stack_store_full", "lost_counts_map_full",
         "user_walk_errors", "kernel_walk_errors", "process_notices_lost",
         "stacks_walked_again", "lost_copy_ring_full", "user_copy_failed")
NOTICE_NEW, NOTICE_EXEC = 1, 2


@dataclasses.dataclass(frozen=True)
class CountKey:
    pid: int
    tid: int
    comm: str
    user_hash: int  # a stack key of the run (see STACK_ID_TAG); 0: no frames
    kernel_hash: int


@dataclasses.dataclass(frozen=True)
class Drained:
    """What one drain took out of the kernel."""

    counts: list[tuple[CountKey, int]]  # user and kernel stacks by their keys (stacks())
    fill: float = 0.0  # share of the fullest of the generation's maps that was in use


MAP_NAMES = ("scratch", "stack_ids0", "stack_ids1", "stacks", "recent", "counts0", "counts1",
             "slots0", "slots1", "control",
             "config", "stats", "targets", "seen", "notices")
DWARF_MAP_NAMES = ("copy_scratch", "copy_pending", "copies")
FP_MAP_NAMES = ("leaf_rules",)
RING_MAPS = ("notices", "copies")
CONFIG_TARGET, CONFIG_CGROUP = 0, 1
_COUNT_KEY = struct.Struct("=IIQQ16sQQ")  # struct sample_key
_SLOT_HEAD = struct.Struct("=QQ")  # struct count_slot: count, state; then the key
# The byte of a slot's state (a u64 at offset 8) that is nonzero once claimed.
_SLOT_STATE = 8 + (7 if sys.byteorder == "big" else 0)
_NONZERO = re.compile(rb"[^\x00]")
_LOSSES = ("lost_stack_store_full", "lost_counts_map_full")
_U32, _U64 = struct.Struct("=I"), struct.Struct("=Q")
_NOTICE = struct.Struct("=II")
# A dwarf-mode sample's user stack, unwound: addresses, leaf first.
UnwindCopy = Callable[[copies.StackCopy], tuple[int, ...]]


class BpfSampler:
    """The loaded program, attached perf events and the maps of one run.

    The program comes from a kept image when one matches (image.py: no
    compiling, BCC not even imported), else from BCC, and is kept then. Maps
    are read through libbcc_bpf (maps.py) either way. Configuration is in
    config.py, compiling's helpers and the bcc import in compiler.py.
    """

    def __init__(self, options: RecordOptions, plan: HeadersPlan,
                 cgroup_id: int | None = None) -> None:
        self.flags = defines(options, cgroup_id is not None)
        self._perf_fds: list[int] = []
        self._slots: list[bpf_maps.MappedArray] = []
        self._live = 0  # the generation the program writes to
        self._keys = StackKeys(options.max_stacks)
        self._by_hash: dict[int, int] = {}  # content hash -> key for the run
        # Content hashes of stacks found past --max-stacks since the last
        # drain: not kept in _by_hash, and not to be looked for in the kernel
        # again at every copy that names one.
        self._over_hashes: set[int] = set()
        self._losses = 0  # samples lost as of the last drain
        self._to_sweep: set[int] = set()  # generations whose stack maps may hold orphans
        self._bpf = None  # BCC's module, when compiled this run
        self._ring: bpf_maps.RingBuffer | bpf_maps.PerfBuffers | None = None
        self._tp_fd = -1
        self.dwarf = bool(self.flags.get("CALL_GRAPH_DWARF"))
        self._per_thread = bool(self.flags.get("PER_THREAD"))
        self._unwind_copy: UnwindCopy | None = None
        self._copy_counts: dict[CountKey, int] = {}  # dwarf: counted here, not in the kernel
        self._bucket_keys: list[dict[int, int]] = [{}, {}]  # dwarf: bucket id -> run key, per generation
        self._ring_losses = 0
        self.copy_errors = 0  # records the unwinder failed on (a bug: counted, never fatal)
        self._leaf_callers: LeafCallers | None = None  # fp: callers of frameless leaves
        text = program_text(self.flags)
        key = bpf_image.key_for(text, plan.description + repr(plan))
        self.loaded = None
        self.compiled = False
        image = bpf_image.read(key)
        if image is not None:
            # libbcc_bpf prints the verifier's log when it refuses: not for users
            with captured_stderr():
                try:
                    self.loaded = bpf_image.load(image)
                    self._specs = {m.name: m for m in image.maps}
                except Exception:  # refused (a changed kernel), or not ours to load
                    self.loaded = None
        try:
            if self.loaded is None:
                image = self._compile(plan)
                self.compiled = True
                if image is not None:
                    bpf_image.write(key, image)
            self._setup(options, cgroup_id)
        except BaseException:
            self.close()
            raise

    def _compile(self, plan: HeadersPlan) -> bpf_image.Image | None:
        """Compile with BCC and load; the image to keep (None if it cannot be kept)."""
        bcc = import_bcc()
        gc.collect()  # what parsing and importing left behind, before clang's peak
        release_freed_memory()
        with kernel_source(plan) as source:
            env_before = os.environ.get("BCC_KERNEL_SOURCE")
            if source:
                os.environ["BCC_KERNEL_SOURCE"] = source
            try:
                with captured_stderr() as log:
                    try:
                        self._bpf = bcc.BPF(text=SOURCE.read_text(),
                                            cflags=[f"-D{k}={v}" for k, v in self.flags.items()])
                        progs = {name.decode(): (ptype, self._bpf.load_func(name, ptype).fd)
                                 for name, ptype in ((SAMPLE_FN, bcc.BPF.PERF_EVENT),
                                                     (EXEC_FN, bcc.BPF.RAW_TRACEPOINT))}
                    except Exception as err:  # BCC raises bare Exception
                        failure = str(err)
                    else:
                        failure = None
            finally:
                if env_before is None:
                    os.environ.pop("BCC_KERNEL_SOURCE", None)
                else:
                    os.environ["BCC_KERNEL_SOURCE"] = env_before
        if failure is not None:
            self.close()
            if "super-user" in failure or "Operation not permitted" in failure:
                raise NotPermittedError(f"the kernel refused the BPF program: {failure}",
                                        "run as root (CAP_BPF and CAP_PERFMON)")
            raise CompileError(
                f"BCC could not build the BPF program ({failure}):\n"
                + compiler_message(log[0]),
                "check the kernel headers ('make setup'); run with --print-program "
                "to see the program as compiled")
        release_freed_memory()
        specs, fds = {}, {}
        for name in MAP_NAMES + self._mode_maps():
            try:
                table = self._bpf[name]
            except KeyError:  # the program file and this module disagree
                raise CompileError(f"the compiled BPF program has no map {name!r}",
                                   f"{SOURCE} does not match this profiler: reinstall it") \
                    from None
            leaf = getattr(table, "sLeaf", table.Leaf)  # per-CPU tables widen Leaf
            ringbuf = int(table.ttype) == bpf_maps.BPF_MAP_TYPE_RINGBUF  # no key, no value
            specs[name] = bpf_image.MapSpec(
                name, int(table.ttype), 0 if ringbuf else ctypes.sizeof(table.Key),
                0 if ringbuf else ctypes.sizeof(leaf), int(table.max_entries), int(table.flags))
            fds[name] = table.map_fd
        self.loaded = bpf_image.Loaded(fds, {n: fd for n, (_t, fd) in progs.items()}, owned=False)
        self._specs = specs
        lib = bcc.lib
        return bpf_image.from_instructions(
            specs, fds, {n: (t, self._bpf.dump_func(n.encode())) for n, (t, _fd) in progs.items()},
            lib.bpf_module_license(self._bpf.module).decode(),
            int(lib.bpf_module_kern_version(self._bpf.module)))

    def _mode_maps(self) -> tuple[str, ...]:
        if self.flags.get("CALL_GRAPH_DWARF"):
            return DWARF_MAP_NAMES
        return FP_MAP_NAMES if self.flags.get("WANT_USER") else ()

    def _setup(self, options: RecordOptions, cgroup_id: int | None) -> None:
        specs = self._specs
        self._maps = {name: bpf_maps.BpfMap(fd, specs[name].key_size, specs[name].value_size,
                                            specs[name].max_entries, specs[name].type)
                      for name, fd in self.loaded.maps.items()
                      if name not in RING_MAPS and name != "copy_scratch"}
        self._slots = [bpf_maps.MappedArray(self.loaded.maps[name], specs[name].value_size,
                                            specs[name].max_entries)
                       for name in ("slots0", "slots1")]
        ids = options.target.ids
        config = self._maps["config"]
        config.update(_U32.pack(CONFIG_TARGET), _U64.pack(ids[0] if len(ids) == 1 else 0))
        config.update(_U32.pack(CONFIG_CGROUP), _U64.pack(cgroup_id or 0))
        self._tp_fd = bpf_maps._check(bpf_maps.lib().bpf_attach_raw_tracepoint(
            self.loaded.progs[EXEC_FN.decode()], b"sched_process_exec"),
            "attaching to sched_process_exec")

    # -------------------------------------------------------------- set-up

    def set_targets(self, ids: list[int]) -> None:
        table = self._maps["targets"]
        for i in ids:
            word = _U32.pack(i // 64)
            bits = _U64.unpack(table.lookup(word) or bytes(8))[0]
            table.update(word, _U64.pack(bits | 1 << (i % 64)))

    def on_notice(self, callback: Callable[[int, int], None]) -> None:
        """callback(pid, kind) for each process notice, run during poll()."""
        def handle(data: bytes) -> None:
            pid, kind = _NOTICE.unpack_from(data)
            callback(pid, kind)

        if self.flags["OUTPUT_PERF"]:  # a kernel without BPF ring buffers
            self._ring = bpf_maps.PerfBuffers()
            self._ring.add_raw(self.loaded.maps["notices"],
                               lambda address, size: handle(ctypes.string_at(address, size)),
                               NOTICE_PERF_PAGES, 1)
        else:
            self._ring = bpf_maps.RingBuffer(self.loaded.maps["notices"], handle)

    def on_copy(self, unwind_copy: UnwindCopy) -> None:
        """Dwarf mode: unwind each stack copy with `unwind_copy` as it is
        read (during poll()), and count it. Needs on_notice first: both
        rings are read together."""
        self._unwind_copy = unwind_copy
        if self.flags["OUTPUT_PERF"]:
            self._ring.add_raw(self.loaded.maps["copies"], self._take_copy,
                               *perf_copy_buffer(self.flags))
        else:
            self._ring.add_raw(self.loaded.maps["copies"], self._take_copy)

    def _take_copy(self, address: int, size: int) -> None:
        found = copies.decode(address, size)
        if found is None:
            return
        copy, kernel, gen = found
        try:
            user = self._keys.intern(self._unwind_copy(copy)) \
                if copy.has_user else 0
            kernel_key = self._kernel_key(kernel, gen)
        except Exception:  # an unwinder bug must not lose the run: count it
            self.copy_errors += 1
            user, kernel_key = MISSING_STACK, 0
        key = CountKey(copy.pid, copy.tid if self._per_thread else 0, copy.comm, user, kernel_key)
        self._copy_counts[key] = self._copy_counts.get(key, 0) + 1

    def _kernel_key(self, kernel: int, gen: int) -> int:
        """The run key of a kernel stack named in a copy record, read now:
        its generation is emptied only after the ring has been read."""
        if kernel == 0:
            return 0
        if kernel & STACK_ID_TAG:
            keys = self._bucket_keys[gen]
            key = keys.get(kernel)
            if key is None:
                bucket = _U32.pack(kernel & 0xFFFFFFFF)
                raw = self._maps[f"stack_ids{gen}"].lookup(bucket)
                key = MISSING_STACK if raw is None else \
                    self._keys.intern(from_bucket(raw))
                keys[kernel] = key
            return key
        if kernel not in self._by_hash and kernel not in self._over_hashes:
            self._drain_content_stacks()  # stored by content since the last drain
        return self._hash_key(kernel)

    def attach(self, attr: PerfEventAttr, cpus: list[int]) -> None:
        """Open `attr` on every CPU, attach the program, then enable them all."""
        prog = self.loaded.progs[SAMPLE_FN.decode()]
        for cpu in cpus:
            fd = events.perf_event_open(attr, -1, cpu)
            self._perf_fds.append(fd)
            events.ioctl(fd, events.IOC_SET_BPF, prog)
        for fd in self._perf_fds:
            events.ioctl(fd, events.IOC_ENABLE)

    def stop(self) -> None:
        """Stop sampling (the maps stay readable)."""
        for fd in self._perf_fds:
            with contextlib.suppress(OSError):
                events.ioctl(fd, events.IOC_DISABLE)

    # -------------------------------------------------------------- reading

    def poll(self, timeout: float) -> None:
        if self._ring is not None:
            self._ring.poll(int(timeout * 1000))
            if self.dwarf:
                self._ring.consume()
        elif timeout > 0:
            time.sleep(timeout)

    def stats(self) -> dict[str, int]:
        table = self._maps["stats"]
        out = {}
        for i, name in enumerate(STATS):
            raw = table.lookup(_U32.pack(i)) or b""
            out[name] = sum(_U64.unpack_from(raw, at)[0]
                            for at in range(0, len(raw) - 7, table.slot))
        return out

    def swap_and_drain(self) -> Drained:
        """Make the other generation live, wait for the programs still
        writing to the old one, then take everything out of it."""
        old = self._live
        self._live ^= 1
        self._maps["control"].update(_U32.pack(0), _U32.pack(self._live))
        bpf_maps.wait_for_running_programs()
        if self.dwarf:
            return self._drain_copies(old)
        return self._drain_generation(old)

    def drain_all(self) -> Drained:
        """Both generations, once stop() has been called."""
        bpf_maps.wait_for_running_programs()
        if self.dwarf:
            first = self._drain_copies(self._live ^ 1)
            last = self._drain_copies(self._live)
            return Drained(first.counts + last.counts)
        first = self._drain_generation(self._live ^ 1)
        last = self._drain_generation(self._live)
        return Drained(first.counts + last.counts)

    def _drain_generation(self, gen: int) -> Drained:
        """Counts and stacks of a generation no program writes to; its
        stack-trace map is left empty for its next turn."""
        counts_map = self._maps[f"counts{gen}"]
        raw = [(_COUNT_KEY.unpack(k), _U64.unpack_from(v)[0]) for k, v in counts_map.drain()]
        hashed = len(raw)
        raw += self._take_slots(gen)
        by_content = self._drain_content_stacks()
        table = self._maps[f"stack_ids{gen}"]
        run_key = {0: 0}
        buckets = 0
        for (_pid, _tid, user, kernel, _comm, _word, _from), _n in raw:
            for key in (user, kernel):
                if key not in run_key:
                    if key & STACK_ID_TAG:
                        buckets += 1
                        run_key[key] = self._take_bucket(table, key & 0xFFFFFFFF)
                    else:
                        run_key[key] = self._hash_key(key)
        losses = sum(self.stats()[name] for name in _LOSSES)
        if losses != self._losses:  # a lost sample may have left its stack in either generation
            self._losses = losses
            self._to_sweep = {0, 1}
        if gen in self._to_sweep:
            self._to_sweep.discard(gen)
            for key in table.keys():
                table.delete(key)
        counts = []
        for (pid, tid, user, kernel, comm, ret_word, ret_from), n in raw:
            user_key = run_key[user]
            if ret_from and self._leaf_callers is not None and \
                    user_key not in (MISSING_STACK, OVER_LIMIT):
                fixed = self._leaf_callers.stack(pid, self._keys.stack(user_key), ret_word,
                                                 ret_from)
                if fixed is not None:
                    user_key = self._keys.intern(fixed)
            counts.append((CountKey(pid, tid, comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
                                    user_key, run_key[kernel]), n))
        fill = max(buckets / table.max_entries, hashed / counts_map.max_entries,
                   by_content / self._maps["stacks"].max_entries)
        return Drained(counts, fill)

    def _drain_copies(self, gen: int) -> Drained:
        """Dwarf mode: read every record sent so far (no program writes to
        `gen` any more), then empty `gen`'s kernel stack map."""
        if self._ring is not None:
            self._ring.consume()
        self._over_hashes.clear()  # bounded by one drain's distinct stacks
        table = self._maps[f"stack_ids{gen}"]
        taken = self._bucket_keys[gen]
        for bucket in taken:
            table.delete(_U32.pack(bucket & 0xFFFFFFFF))
        losses = self.stats()["lost_copy_ring_full"]
        if losses != self._ring_losses:  # a dropped record may have left its kernel stack behind
            self._ring_losses = losses
            for key in table.keys():
                table.delete(key)
        self._bucket_keys[gen] = {}
        by_content = self._drain_content_stacks()
        counts, self._copy_counts = list(self._copy_counts.items()), {}
        fill = max(len(taken) / table.max_entries,
                   by_content / self._maps["stacks"].max_entries)
        return Drained(counts, fill)

    def _take_slots(self, gen: int) -> list[tuple[tuple, int]]:
        """(key fields, count) of every claimed count slot of a generation,
        which is left empty. A key may also have a count in the hash map."""
        slots = self._slots[gen]
        data, stride = slots.take(), slots.stride
        states = data[_SLOT_STATE::stride]  # one byte a slot
        out = []
        for hit in _NONZERO.finditer(states):
            at = hit.start() * stride
            count, _state = _SLOT_HEAD.unpack_from(data, at)
            out.append((_COUNT_KEY.unpack_from(data, at + _SLOT_HEAD.size), count))
        return out

    def stacks(self) -> dict[int, tuple[int, ...]]:
        """Every stack the run's counts name, by key (leaf first)."""
        return self._keys.stacks()

    def on_leaf_rule(self, judge: Judge) -> None:
        """fp mode: `judge(pid, pc)` judges a sampled leaf by its CFI (see
        leaves.py), so that the caller a frame-pointer walk skipped is put
        back."""
        self._leaf_callers = LeafCallers(judge, self._maps["leaf_rules"])

    def _take_bucket(self, table: bpf_maps.BpfMap, stack_id: int) -> int:
        """Read and free one bucket: its stack's key for the run."""
        bucket = _U32.pack(stack_id)
        raw = table.lookup(bucket)
        if raw is None:
            return MISSING_STACK
        table.delete(bucket)
        return self._keys.intern(from_bucket(raw))

    def _drain_content_stacks(self) -> int:
        """Copy out and delete every stack stored by content; how many. A
        hash names the same stack all run, and a count may use it drains
        after its stack was taken out (the program skips storing it again)."""
        items = self._maps["stacks"].drain()
        for k, v in items:
            nr = min(_U64.unpack_from(v)[0], (len(v) - 8) // 8)
            key = self._keys.intern(struct.unpack_from(f"={nr}Q", v, 8))
            if key == OVER_LIMIT:  # not kept: past the limit, every new hash means it
                self._over_hashes.add(_U64.unpack(k)[0])
            else:
                self._by_hash[_U64.unpack(k)[0]] = key
        return len(items)

    def _hash_key(self, content_hash: int) -> int:
        """The run key of a stack the program stored by content. One not
        kept is a stack found past the run's limit (none is missing before)."""
        key = self._by_hash.get(content_hash)
        if key is None:
            return self._keys.over_limit() if self._keys.full else MISSING_STACK
        return key

    # -------------------------------------------------------------- teardown

    def close(self) -> None:
        self.stop()
        for fd in self._perf_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._perf_fds = []
        for slots in self._slots:
            slots.close()
        self._slots = []
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._tp_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._tp_fd)
            self._tp_fd = -1
        if self.loaded is not None:
            self.loaded.close()
            self.loaded = None
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> "BpfSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
