"""Stack hashes -> root-first address lists, with missing sides classified.

The BPF program walks stacks with frame pointers (bpf_get_stack); this stage
only reorders them and says which samples lack frames. CFI (eh_frame)
unwinding will live beside it.
"""
from __future__ import annotations

import dataclasses

from profiler.model.raw import OVER_STACK_LIMIT, TRUNCATED, RawProfile


@dataclasses.dataclass(frozen=True, kw_only=True)
class StackSample:
    pid: int
    tid: int
    comm: str
    user: tuple[int, ...]  # absolute addresses, root first, leaf last
    kernel: tuple[int, ...]  # root (outermost) first, leaf (sampled IP) last
    count: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnwindSummary:
    no_user_stack: int = 0  # user processes sampled without any user frame
    missing_stack: int = 0  # a stack hash with no stored addresses (should be 0)
    truncated: int = 0  # a side hit the depth limit: its root frames are cut
    copy_truncated: int = 0  # dwarf: the user stack was deeper than the copy (ends in TRUNCATED)
    over_limit: int = 0  # a side first seen after the run held --max-stacks stacks


def unwind(profile: RawProfile) -> tuple[list[StackSample], UnwindSummary]:
    want_user = profile.info.sides != "kernel"
    depth = profile.info.max_depth
    samples = []
    no_user = missing = truncated = copy_cut = over = 0
    for rec in profile.counts:
        user = _side(profile, rec.user_stack)
        kernel = _side(profile, rec.kernel_stack)
        user_missing = user is None  # counted as missing, not again as without user stack
        if user is None or kernel is None:
            missing += rec.count
            user, kernel = user or (), kernel or ()
        proc = profile.processes.get(rec.pid)
        if want_user and not user and not user_missing and rec.pid != 0 and \
                not (proc and proc.kernel_thread):
            no_user += rec.count
        if _OVER in (user, kernel):
            over += rec.count
        if user and user[-1] == TRUNCATED:
            copy_cut += rec.count
        elif len(user) >= depth or len(kernel) >= depth:
            truncated += rec.count
        samples.append(StackSample(pid=rec.pid, tid=rec.tid, comm=rec.comm,
                                   user=tuple(reversed(user)), kernel=tuple(reversed(kernel)),
                                   count=rec.count))
    return samples, UnwindSummary(no_user_stack=no_user, missing_stack=missing,
                                  truncated=truncated, copy_truncated=copy_cut,
                                  over_limit=over)


_OVER = (OVER_STACK_LIMIT,)


def _side(profile: RawProfile, stack_hash: int) -> tuple[int, ...] | None:
    if stack_hash == 0:
        return ()
    return profile.stacks.get(stack_hash)
