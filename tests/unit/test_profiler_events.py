"""perf_event_attr built for each event: the same code for software and PMU events."""
import struct

import pytest

from profiler.errors import UnsupportedEventError
from profiler.events import (ATTR_SIZE, TYPE_HARDWARE, TYPE_HW_CACHE, TYPE_RAW, TYPE_SOFTWARE,
                             build_attr, known_event_names, resolve_event)
from profiler.options import Sampling


def unpack(attr):
    raw = attr.pack()
    assert len(raw) == ATTR_SIZE
    type_, size, config, period_or_freq, sample_type, read_format, flags = \
        struct.unpack_from("=IIQQQQQ", raw)
    assert size == ATTR_SIZE and sample_type == 0 and read_format == 0
    assert raw[48:] == bytes(ATTR_SIZE - 48)
    return type_, config, period_or_freq, flags


@pytest.mark.parametrize("name,type_,config", [
    ("cpu-clock", TYPE_SOFTWARE, 0), ("task-clock", TYPE_SOFTWARE, 1),
    ("page-faults", TYPE_SOFTWARE, 2), ("context-switches", TYPE_SOFTWARE, 3),
    ("cpu-migrations", TYPE_SOFTWARE, 4), ("minor-faults", TYPE_SOFTWARE, 5),
    ("major-faults", TYPE_SOFTWARE, 6),
    ("cycles", TYPE_HARDWARE, 0), ("instructions", TYPE_HARDWARE, 1),
    ("cache-references", TYPE_HARDWARE, 2), ("cache-misses", TYPE_HARDWARE, 3),
    ("branches", TYPE_HARDWARE, 4), ("branch-misses", TYPE_HARDWARE, 5),
    ("bus-cycles", TYPE_HARDWARE, 6), ("stalled-cycles-frontend", TYPE_HARDWARE, 7),
    ("stalled-cycles-backend", TYPE_HARDWARE, 8), ("ref-cycles", TYPE_HARDWARE, 9),
    # PERF_TYPE_HW_CACHE: id | op << 8 | result << 16
    ("L1-dcache-load-misses", TYPE_HW_CACHE, 0 | 0 << 8 | 1 << 16),
    ("L1-dcache-loads", TYPE_HW_CACHE, 0),
    ("LLC-load-misses", TYPE_HW_CACHE, 2 | 0 << 8 | 1 << 16),
    ("dTLB-load-misses", TYPE_HW_CACHE, 3 | 0 << 8 | 1 << 16),
    ("iTLB-load-misses", TYPE_HW_CACHE, 4 | 0 << 8 | 1 << 16),
    ("L1-dcache-store-misses", TYPE_HW_CACHE, 0 | 1 << 8 | 1 << 16),
    ("r01c2", TYPE_RAW, 0x1C2), ("rC0", TYPE_RAW, 0xC0),
])
def test_frequency_attr_for_each_event(name, type_, config):
    attr = build_attr(resolve_event(name), Sampling(frequency=99))
    t, c, freq, flags = unpack(attr)
    assert (t, c, freq) == (type_, config, 99)
    assert flags == (1 << 0) | (1 << 10)  # disabled until attached; freq


def test_period_attr():
    t, c, period, flags = unpack(build_attr(resolve_event("page-faults"), Sampling(frequency=None, period=1)))
    assert (t, c, period) == (TYPE_SOFTWARE, 2, 1)
    assert flags == 1  # disabled, not freq


def test_cpu_clock_and_cycles_differ_only_in_type_and_config():
    a = build_attr(resolve_event("cpu-clock"), Sampling(frequency=999)).pack()
    b = build_attr(resolve_event("cycles"), Sampling(frequency=999)).pack()
    assert a[8:] == b[8:] and a[:4] != b[:4]


def test_unknown_event_is_refused_with_a_remedy():
    with pytest.raises(UnsupportedEventError) as e:
        resolve_event("no-such-event")
    assert "list-events" in e.value.remedy


def test_every_known_name_resolves():
    for name in known_event_names():
        resolve_event(name)
