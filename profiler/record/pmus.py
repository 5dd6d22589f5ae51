"""The PMUs the kernel registers in sysfs, their formats and named events,
and perf's rules for turning `term=value` lists into perf_event_attr bits.

Pure parsing (`parse_format`, `parse_terms`, `encode_terms`) apart from the
one reader, `read_pmus`; profiler/events.py resolves `pmu/event/` names
with them.
"""
from __future__ import annotations

import dataclasses
import os

from profiler.record.cpus import parse_cpu_list

PMU_ROOT = "/sys/bus/event_source/devices"


@dataclasses.dataclass(frozen=True)
class Pmu:
    name: str
    type: int
    formats: dict[str, tuple[str, tuple[tuple[int, int], ...]]]  # term -> (field, bit ranges)
    events: dict[str, str]  # event name -> its terms ("event=0x3c,umask=0x00")
    cpus: tuple[int, ...] = ()  # its sysfs cpumask/cpus (hybrid cores, uncore); () = any


def parse_format(text: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A sysfs format file ("config:0-7,32-35") -> (field, ((lo, hi), ...))."""
    field, _, spec = text.strip().partition(":")
    if field not in ("config", "config1", "config2") or not spec:
        raise ValueError(f"unknown format {text.strip()!r}")
    ranges = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return field, tuple(ranges)


def _number(text: str) -> int:
    """A term's value as perf reads it (strtoull base 0: 0x.., 0.., decimal)."""
    text = text.strip().lower()
    if text.startswith("0x"):
        return int(text, 16)
    if len(text) > 1 and text.startswith("0"):
        return int(text, 8)
    return int(text, 10)


def parse_terms(text: str, named: dict[str, str] | None = None) -> list[tuple[str, int]]:
    """"event=0x3c,umask=0x1,edge" -> [(term, value)]; a bare term is 1, or
    the terms of the PMU's event of that name (`mem-loads,ldlat=30`)."""
    terms = []
    for part in text.strip().split(","):
        if not part:
            continue
        term, eq, value = part.partition("=")
        if not eq and named and term.strip() in named:
            terms.extend(parse_terms(named[term.strip()]))
        else:
            terms.append((term.strip(), _number(value) if eq else 1))
    return terms


_FIELDS = ("config", "config1", "config2")


def encode_terms(pmu: Pmu, terms: list[tuple[str, int]]) -> tuple[int, int, int]:
    """(config, config1, config2) with each term's bits where the PMU's
    format puts them, as perf does (the value's bits fill the format's bits
    from the lowest up; `config=N` and the like set a whole field); a later
    term overrides an earlier one's bits. ValueError for a term the PMU does
    not define."""
    fields = dict.fromkeys(_FIELDS, 0)
    for term, value in terms:
        if term in _FIELDS:
            fields[term] = value
            continue
        if term not in pmu.formats:
            raise ValueError(f"PMU {pmu.name!r} has no term {term!r} "
                             f"(it has: {', '.join(sorted(pmu.formats)) or 'none'})")
        field, ranges = pmu.formats[term]
        for lo, hi in sorted(ranges):
            width = hi - lo + 1
            mask = ((1 << width) - 1) << lo
            fields[field] = (fields[field] & ~mask) | ((value << lo) & mask)
            value >>= width
        if value:
            raise ValueError(f"value too large for term {term!r} of PMU {pmu.name!r}")
    return fields["config"], fields["config1"], fields["config2"]


def read_pmus(root: str = PMU_ROOT) -> dict[str, Pmu]:
    """The PMUs the kernel registered, with their formats and named events."""
    pmus = {}
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return {}
    for name in names:
        base = os.path.join(root, name)
        try:
            with open(os.path.join(base, "type")) as f:
                type_ = int(f.read())
        except (OSError, ValueError):
            continue
        cpus: tuple[int, ...] = ()
        for mask in ("cpumask", "cpus"):
            try:
                with open(os.path.join(base, mask)) as f:
                    cpus = parse_cpu_list(f.read())
                break
            except (OSError, ValueError):
                continue
        formats, events = {}, {}
        for sub, into, parse in (("format", formats, parse_format), ("events", events, str.strip)):
            try:
                entries = sorted(os.listdir(os.path.join(base, sub)))
            except OSError:
                continue
            for entry in entries:
                if "." in entry:  # events/x.scale, x.unit: not events
                    continue
                try:
                    with open(os.path.join(base, sub, entry)) as f:
                        into[entry] = parse(f.read())
                except (OSError, ValueError):
                    continue
        pmus[name] = Pmu(name, type_, formats, events, cpus)
    return pmus
