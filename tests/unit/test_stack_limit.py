"""--max-stacks: the run's stack store stops growing at its limit, and what
comes after is kept under one marker stack, named and counted downstream."""
from __future__ import annotations

import pytest

from profiler.model.raw import OVER_STACK_LIMIT, CountRecord, RawProfile, RecordingInfo
from profiler.record.bpf.stackkeys import OVER_LIMIT, StackKeys
from profiler.symbolize.summary import notes_of
from profiler.unwind.stacks import unwind


def test_new_stacks_past_the_limit_share_one_key_and_old_ones_keep_theirs():
    keys = StackKeys(limit=3)
    a, b, c = keys.intern((1, 2)), keys.intern((3,)), keys.intern((4, 5, 6))
    assert len({a, b, c}) == 3 and OVER_LIMIT not in (a, b, c)
    assert keys.full
    assert keys.intern((7,)) == keys.intern((8, 9)) == OVER_LIMIT
    assert keys.intern((3,)) == b  # a stack kept before stays itself
    stacks = keys.stacks()
    assert stacks[OVER_LIMIT] == (OVER_STACK_LIMIT,)
    assert len(stacks) == 4 and stacks[c] == (4, 5, 6)


def test_no_marker_stack_until_the_limit_is_reached():
    keys = StackKeys(limit=10)
    for i in range(10):
        keys.intern((i + 1,))
    assert OVER_LIMIT not in keys.stacks() and keys.full


def _profile(counts, stacks, limit):
    info = RecordingInfo(target="t", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=1.0, cpus=(0,), sides="both",
                         per_thread=False, started=0.0, max_stacks=limit)
    records = tuple(CountRecord(pid=p, tid=0, comm="w", user_stack=u, kernel_stack=k, count=n)
                    for p, u, k, n in counts)
    return RawProfile(info=info, counts=records, stacks=stacks, processes={},
                      stats={"samples": sum(c[3] for c in counts)})


@pytest.mark.parametrize("side", ["user", "kernel"])
def test_samples_under_the_marker_are_counted_once_and_noted(side):
    over = OVER_LIMIT
    stacks = {1: (0x401000, 0x402000), over: (OVER_STACK_LIMIT,)}
    counts = [(10, 1, 0, 5), (10, over, 0, 7)] if side == "user" else \
        [(10, 1, 0, 5), (10, 1, over, 7)]
    profile = _profile(counts, stacks, 2)
    samples, summary = unwind(profile)
    assert summary.over_limit == 7 and summary.missing_stack == 0
    assert sum(s.count for s in samples) == 12  # nothing dropped
    notes = notes_of(profile, summary)
    assert any(n.startswith("7 samples of stacks first seen after the run held its 2 distinct")
               for n in notes), notes
