"""BPF maps, programs and the ring buffer through libbcc_bpf.

libbcc_bpf is the small part of BCC: the bpf() system-call wrappers, 0.4 MB,
without the 100 MB of LLVM in libbcc. Reading maps through it rather than
BCC's Table objects lets a run load a compiled program it kept
(profiler/record/bpf/image.py) without importing BCC at all. Keys and values are
bytes here; the recorder unpacks them with `struct`.
"""
from __future__ import annotations

import ctypes as ct
import errno
import functools
import mmap
import os
import platform
import time
from typing import Callable

from profiler.record.cpus import online_cpus, possible_cpus

_LIB: ct.CDLL | None = None
RINGBUF_CALLBACK = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_int)
PERF_RAW_CALLBACK = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_void_p, ct.c_int)
PERF_LOST_CALLBACK = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_uint64)
BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF = 5, 6, 27
_BATCH = 512  # entries taken per batch call


class PerfBufferOpts(ct.Structure):  # struct bcc_perf_buffer_opts
    _fields_ = [("pid", ct.c_int), ("cpu", ct.c_int), ("wakeup_events", ct.c_int)]


class BpfCallError(OSError):
    """A bpf() call failed (errno and what was asked)."""


def lib() -> ct.CDLL:
    global _LIB
    if _LIB is None:
        try:
            so = ct.CDLL("libbcc_bpf.so.0", use_errno=True)
        except OSError as err:
            from profiler.errors import BccMissingError
            raise BccMissingError(f"libbcc_bpf.so.0 cannot be loaded ({err})",
                                  "run 'make setup' (installs Debian's libbpfcc)") from None
        i, p, u32p = ct.c_int, ct.c_void_p, ct.POINTER(ct.c_uint32)
        for name, args in (("bpf_lookup_elem", [i, p, p]), ("bpf_delete_elem", [i, p]),
                           ("bpf_update_elem", [i, p, p, ct.c_ulonglong]),
                           ("bpf_get_next_key", [i, p, p]),
                           ("bpf_lookup_and_delete_batch", [i, u32p, u32p, p, p, u32p]),
                           ("bcc_create_map", [i, ct.c_char_p, i, i, i, i]),
                           ("bcc_prog_load", [i, ct.c_char_p, p, i, ct.c_char_p, ct.c_uint,
                                              i, ct.c_char_p, ct.c_uint]),
                           ("bpf_attach_raw_tracepoint", [i, ct.c_char_p]),
                           ("bpf_poll_ringbuf", [p, i]), ("bpf_free_ringbuf", [p]),
                           ("bpf_add_ringbuf", [p, i, RINGBUF_CALLBACK, p]),
                           ("bpf_consume_ringbuf", [p]),
                           ("perf_reader_fd", [p]),
                           ("perf_reader_poll", [i, ct.POINTER(p), i]),
                           ("perf_reader_consume", [i, ct.POINTER(p)])):
            fn = getattr(so, name)
            fn.argtypes, fn.restype = args, ct.c_int
        so.bpf_free_ringbuf.restype = None
        so.bpf_open_perf_buffer_opts.argtypes = [PERF_RAW_CALLBACK, PERF_LOST_CALLBACK, p, i,
                                                 ct.POINTER(PerfBufferOpts)]
        so.bpf_open_perf_buffer_opts.restype = p
        so.perf_reader_free.argtypes, so.perf_reader_free.restype = [p], None
        so.bpf_new_ringbuf.argtypes = [i, RINGBUF_CALLBACK, p]
        so.bpf_new_ringbuf.restype = p
        _LIB = so
    return _LIB


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ct.get_errno()
        raise BpfCallError(code, f"{what}: {os.strerror(code)}")
    return result


_MEMBARRIER = {"x86_64": 324, "aarch64": 283}  # syscall numbers
MEMBARRIER_CMD_GLOBAL = 1
_GRACE_FALLBACK = 0.05  # s: thousands of times one program run (microseconds)


def wait_for_running_programs() -> None:
    """Return once every BPF program that was running on any CPU when this
    was called has ended.

    Programs run inside RCU read-side sections (preemption off), so an RCU
    grace period is that wait; membarrier(MEMBARRIER_CMD_GLOBAL) is
    synchronize_rcu() from user space (about 10 ms). Where it is refused
    (nohz_full kernels, other architectures), a short sleep is the
    best-effort stand-in.
    """
    number = _MEMBARRIER.get(platform.machine())
    if number is not None and _libc().syscall(number, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0:
        return
    time.sleep(_GRACE_FALLBACK)


@functools.cache
def _libc() -> ct.CDLL:
    return ct.CDLL(None, use_errno=True)


class BpfMap:
    """One map by descriptor. Per-CPU values come back as all the CPUs'
    slots in a row, each rounded up to 8 bytes, as the kernel returns them."""

    def __init__(self, fd: int, key_size: int, value_size: int, max_entries: int,
                 map_type: int) -> None:
        self.fd = fd
        self.key_size = key_size
        self.max_entries = max_entries
        percpu = map_type in (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY)
        self.slot = (value_size + 7) // 8 * 8 if percpu else value_size
        self.value_size = self.slot * possible_cpus() if percpu else value_size

    def lookup(self, key: bytes) -> bytes | None:
        value = ct.create_string_buffer(self.value_size)
        if lib().bpf_lookup_elem(self.fd, key, value) < 0:
            if ct.get_errno() == errno.ENOENT:
                return None
            _check(-1, "map lookup")
        return value.raw

    def update(self, key: bytes, value: bytes) -> None:
        _check(lib().bpf_update_elem(self.fd, key, value, 0), "map update")

    def delete(self, key: bytes) -> None:
        if lib().bpf_delete_elem(self.fd, key) < 0 and ct.get_errno() != errno.ENOENT:
            _check(-1, "map delete")

    def keys(self) -> list[bytes]:
        out, key = [], None
        nxt = ct.create_string_buffer(self.key_size)
        while lib().bpf_get_next_key(self.fd, key, nxt) == 0 and len(out) <= self.max_entries:
            out.append(nxt.raw)
            key = ct.create_string_buffer(nxt.raw, self.key_size)
        return out

    def drain(self) -> list[tuple[bytes, bytes]]:
        """Look up and delete every entry: the batch call, then any stragglers
        (entries added meanwhile, or kernels without batch operations)."""
        items = self._drain_batch()
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                items.append((key, value))
                self.delete(key)
        return items

    def _drain_batch(self) -> list[tuple[bytes, bytes]]:
        """What the batch calls take out. A call that fails keeps what the
        calls before it took (those entries are gone from the map already);
        the rest is left to the one-by-one pass."""
        # In chunks: buffers for the whole map (16 MB for the stack store)
        # would be allocated, zeroed and copied at every drain, mostly empty.
        chunk = min(self.max_entries, _BATCH)
        keys = ct.create_string_buffer(chunk * self.key_size)
        values = ct.create_string_buffer(chunk * self.value_size)
        token, count = ct.c_uint32(0), ct.c_uint32(0)
        out: list[tuple[bytes, bytes]] = []
        first = True
        while len(out) < self.max_entries:
            count.value = chunk
            result = lib().bpf_lookup_and_delete_batch(
                self.fd, None if first else ct.byref(token), ct.byref(token), keys, values,
                ct.byref(count))
            first = False
            n = count.value
            if n:
                k = ct.string_at(keys, n * self.key_size)
                v = ct.string_at(values, n * self.value_size)
                out += [(k[i * self.key_size:(i + 1) * self.key_size],
                         v[i * self.value_size:(i + 1) * self.value_size]) for i in range(n)]
            if result != 0 or n == 0:
                break  # ENOENT: all taken; anything else: stop here
        return out


class MappedArray:
    """An array map created with BPF_F_MMAPABLE, read and cleared through
    shared memory: a whole map in two copies, not a system call per entry."""

    def __init__(self, fd: int, value_size: int, max_entries: int) -> None:
        self.stride = (value_size + 7) // 8 * 8  # the kernel's element size
        self.length = self.stride * max_entries
        pages = -(-self.length // mmap.PAGESIZE) * mmap.PAGESIZE
        self._mm: mmap.mmap | None = mmap.mmap(fd, pages, mmap.MAP_SHARED,
                                               mmap.PROT_READ | mmap.PROT_WRITE)

    def take(self) -> bytes:
        """Every value, leaving zeros behind. Only for a map no program is
        writing to: a write between the copy and the clearing would be lost."""
        data = self._mm[:self.length]
        self._mm[:self.length] = bytes(self.length)
        return data

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()  # the mapping holds a reference to the map
            self._mm = None


class RingBuffer:
    """A BPF ring buffer map; `callback(bytes)` runs for each record during poll()."""

    def __init__(self, map_fd: int, callback: Callable[[bytes], None]) -> None:
        def handle(_ctx, data, size):
            callback(ct.string_at(data, size))
            return 0

        self._handle = RINGBUF_CALLBACK(handle)  # kept: libbcc_bpf holds the pointer
        self._ring = lib().bpf_new_ringbuf(map_fd, self._handle, None)
        if not self._ring:
            _check(-1, "ring buffer")
        self._more: list = []

    def add_raw(self, map_fd: int, callback: Callable[[int, int], None]) -> None:
        """Poll another ring with this one: `callback(address, size)` sees
        each record in place (no copy: stack copies are kilobytes)."""
        def handle(_ctx, data, size):
            callback(data, size)
            return 0

        cb = RINGBUF_CALLBACK(handle)
        self._more.append(cb)
        _check(lib().bpf_add_ringbuf(self._ring, map_fd, cb, None), "ring buffer")

    def poll(self, timeout_ms: int) -> None:
        lib().bpf_poll_ringbuf(self._ring, timeout_ms)

    def consume(self) -> None:
        """Every record now in every ring, woken up or not (stack copies
        are sent without a wake-up)."""
        lib().bpf_consume_ringbuf(self._ring)

    def close(self) -> None:
        if self._ring:
            lib().bpf_free_ringbuf(self._ring)
            self._ring = None


class PerfBuffers:
    """BPF_PERF_OUTPUT maps, where the kernel has no BPF ring buffer (before
    5.8): one perf buffer per online CPU and map, read together. The same
    interface as RingBuffer's raw side: `callback(address, size)` sees each
    record in place during poll() or consume()."""

    def __init__(self) -> None:
        self._readers: list[int] = []
        self._callbacks: list = []  # kept: libbcc_bpf holds the pointers
        self._array = (ct.c_void_p * 0)()

    def add_raw(self, map_fd: int, callback: Callable[[int, int], None], pages: int,
                wakeup_events: int) -> None:
        """Open `pages` pages (a power of 2) per CPU for the map; each wakes
        poll() after `wakeup_events` records."""
        def handle(_ctx, data, size):
            callback(data, size)

        def lost(_ctx, n):
            pass  # the program counts each record it could not send (stats)

        raw_cb, lost_cb = PERF_RAW_CALLBACK(handle), PERF_LOST_CALLBACK(lost)
        self._callbacks += [raw_cb, lost_cb]
        for cpu in online_cpus():
            opts = PerfBufferOpts(pid=-1, cpu=cpu, wakeup_events=max(1, wakeup_events))
            reader = lib().bpf_open_perf_buffer_opts(raw_cb, lost_cb, None, pages, ct.byref(opts))
            if not reader:
                _check(-1, f"perf buffer on CPU {cpu}")
            self._readers.append(reader)
            fd = lib().perf_reader_fd(reader)
            _check(lib().bpf_update_elem(map_fd, ct.byref(ct.c_int(cpu)), ct.byref(ct.c_int(fd)),
                                         0), "perf buffer map update")
        self._array = (ct.c_void_p * len(self._readers))(*self._readers)

    def poll(self, timeout_ms: int) -> None:
        if self._readers:
            lib().perf_reader_poll(len(self._readers), self._array, timeout_ms)

    def consume(self) -> None:
        """Every record now in every buffer, whether it woke poll() or not."""
        if self._readers:
            lib().perf_reader_consume(len(self._readers), self._array)

    def close(self) -> None:
        for reader in self._readers:
            lib().perf_reader_free(reader)
        self._readers = []
        self._array = (ct.c_void_p * 0)()


def has_ring_buffers() -> bool:
    """Whether this kernel has BPF ring buffers (5.8 and later), by creating
    one. Only an unknown map type (EINVAL) says no: a refusal for want of
    privilege is left to loading the program, which explains it."""
    fd = lib().bcc_create_map(BPF_MAP_TYPE_RINGBUF, b"probe_ringbuf", 0, 0, 4096, 0)
    if fd >= 0:
        os.close(fd)
        return True
    return ct.get_errno() != errno.EINVAL
