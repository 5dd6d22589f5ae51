"""CPU lists as the kernel writes them ("0-3,8"), and this machine's online
and possible CPUs."""
from __future__ import annotations

import os


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """"0-3,8" -> (0, 1, 2, 3, 8)."""
    cpus = []
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(cpus)


def _read(path: str) -> tuple[int, ...] | None:
    try:
        with open(path) as f:
            return parse_cpu_list(f.read())
    except (OSError, ValueError):
        return None


def online_cpus() -> list[int]:
    return list(_read("/sys/devices/system/cpu/online") or range(os.cpu_count() or 1))


def possible_cpus() -> int:
    """How many per-CPU slots a per-CPU map value has."""
    return len(_read("/sys/devices/system/cpu/possible") or ()) or os.cpu_count() or 1
