"""perf_event_attr built for each event: the same code for software and PMU events."""
import struct

import pytest

from profiler.errors import UnsupportedEventError
from profiler.record.events import (ATTR_SIZE, TYPE_HARDWARE, TYPE_HW_CACHE, TYPE_RAW, TYPE_SOFTWARE,
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


# ------------------------------------------------------------ PMUs in sysfs

from profiler.errors import UsageError  # noqa: E402
from profiler.record.events import check_rate  # noqa: E402
from profiler.record.pmus import Pmu, encode_terms, parse_format, parse_terms, read_pmus  # noqa: E402


def _sysfs(root, name, type_, formats, events):
    base = root / name
    (base / "format").mkdir(parents=True)
    (base / "events").mkdir()
    (base / "type").write_text(f"{type_}\n")
    for term, spec in formats.items():
        (base / "format" / term).write_text(spec + "\n")
    for event, terms in events.items():
        (base / "events" / event).write_text(terms + "\n")


def test_format_and_terms_are_parsed_as_sysfs_writes_them():
    assert parse_format("config:0-7\n") == ("config", ((0, 7),))
    assert parse_format("config1:0-63") == ("config1", ((0, 63),))
    assert parse_format("config:0-7,32-35") == ("config", ((0, 7), (32, 35)))
    assert parse_format("config:21") == ("config", ((21, 21),))
    with pytest.raises(ValueError):
        parse_format("bogus:0-3")
    assert parse_terms("event=0x3c,umask=0x01,edge") == [("event", 0x3C), ("umask", 1), ("edge", 1)]


def test_terms_are_placed_where_the_format_says():
    pmu = Pmu("cpu", 4, {"event": ("config", ((0, 7),)), "umask": ("config", ((8, 15),)),
                         "edge": ("config", ((18, 18),)), "ldlat": ("config1", ((0, 15),)),
                         "split": ("config", ((0, 3), (32, 35)))}, {})
    assert encode_terms(pmu, [("event", 0xC0), ("umask", 0x1)]) == (0x1C0, 0, 0)
    assert encode_terms(pmu, [("edge", 1), ("ldlat", 3)]) == (1 << 18, 3, 0)
    assert encode_terms(pmu, [("split", 0x5A)]) == (0xA | 0x5 << 32, 0, 0)  # low bits first
    with pytest.raises(ValueError):
        encode_terms(pmu, [("event", 0x1FF)])  # does not fit in 8 bits
    with pytest.raises(ValueError):
        encode_terms(pmu, [("nope", 1)])


def test_pmu_events_resolve_from_sysfs_and_reach_the_attr(tmp_path):
    _sysfs(tmp_path, "cpu", 4, {"event": "config:0-7", "umask": "config:8-15",
                                "ldlat": "config1:0-15"},
           {"mem-loads": "event=0xcd,umask=0x1,ldlat=3", "cycles": "event=0x3c"})
    (tmp_path / "cpu" / "events" / "mem-loads.scale").write_text("1\n")  # not an event
    _sysfs(tmp_path, "msr", 9, {"event": "config:0-63"}, {"tsc": "event=0x00"})
    pmus = read_pmus(str(tmp_path))
    assert sorted(pmus) == ["cpu", "msr"] and sorted(pmus["cpu"].events) == ["cycles", "mem-loads"]
    event = resolve_event("cpu/mem-loads/", pmus)
    assert (event.type, event.config, event.config1) == (4, 0x1CD, 3)
    assert resolve_event("cpu/event=0xc0,umask=2/", pmus).config == 0x2C0
    raw = build_attr(event, Sampling(frequency=99)).pack()
    config1, config2 = struct.unpack_from("=QQ", raw, 56)  # perf_event_attr.config1, config2
    assert (config1, config2) == (3, 0)
    with pytest.raises(UnsupportedEventError) as e:
        resolve_event("gpu/x/", pmus)
    assert "cpu, msr" in e.value.remedy
    with pytest.raises(UnsupportedEventError) as e:
        resolve_event("cpu/no-such-event/", pmus)
    assert "mem-loads" in e.value.remedy


def test_a_rate_above_the_kernels_limit_is_refused_with_the_limit(monkeypatch):
    import profiler.record.events as events
    monkeypatch.setattr(events, "max_sample_rate", lambda: 50000)
    check_rate(Sampling(frequency=50000))
    check_rate(Sampling(frequency=None, period=1))
    with pytest.raises(UsageError) as e:
        check_rate(Sampling(frequency=100000))
    assert "50000" in e.value.message and "perf_event_max_sample_rate" in e.value.remedy


def test_terms_as_perf_reads_them():
    pmu = Pmu("cpu", 4, {"event": ("config", ((0, 7),)), "umask": ("config", ((8, 15),)),
                         "ldlat": ("config1", ((0, 15),)), "odd": ("config", ((32, 35), (0, 3)))},
              {"mem-loads": "event=0xcd,umask=0x1,ldlat=3"})
    # a named event plus terms; the later term wins
    terms = parse_terms("mem-loads,ldlat=30", pmu.events)
    assert encode_terms(pmu, terms) == (0x1CD, 30, 0)
    # whole fields, and perf's number bases (strtoull base 0)
    assert encode_terms(pmu, parse_terms("config=0x1234,config2=7")) == (0x1234, 0, 7)
    assert parse_terms("event=010,umask=10") == [("event", 8), ("umask", 10)]
    # format bits filled from the lowest, whatever order the file lists them in
    assert encode_terms(pmu, [("odd", 0x5A)]) == (0xA | 0x5 << 32, 0, 0)


def test_a_pmu_counting_on_some_cpus_limits_the_cpus(tmp_path, monkeypatch):
    from profiler.record import recorder
    _sysfs(tmp_path, "cpu_atom", 10, {"event": "config:0-7"}, {"cycles": "event=0x3c"})
    (tmp_path / "cpu_atom" / "cpus").write_text("2-3\n")
    pmus = read_pmus(str(tmp_path))
    assert pmus["cpu_atom"].cpus == (2, 3)
    event = resolve_event("cpu_atom/cycles/", pmus)
    monkeypatch.setattr(recorder, "online_cpus", lambda: [0, 1, 2, 3])
    assert recorder.check_cpus((), event) == [2, 3]
    assert recorder.check_cpus((1, 3), event) == [3]
    with pytest.raises(UsageError) as e:
        recorder.check_cpus((0, 1), event)
    assert "only on CPU 2,3" in e.value.message
    assert recorder.check_cpus((), resolve_event("cpu-clock")) == [0, 1, 2, 3]


def test_cpu_lists_as_sysfs_writes_them():
    from profiler.record.cpus import parse_cpu_list
    assert parse_cpu_list("0-3,8\n") == (0, 1, 2, 3, 8)
    assert parse_cpu_list("5") == (5,) and parse_cpu_list("\n") == ()
