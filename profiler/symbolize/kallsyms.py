"""Kernel symbols from /proc/kallsyms: `parse_kallsyms(text)` is pure."""
from __future__ import annotations

import bisect
import dataclasses

TEXT_TYPES = frozenset("tTwW")


@dataclasses.dataclass(frozen=True)
class KernelSymbols:
    addresses: tuple[int, ...]  # sorted
    names: tuple[str, ...]
    text_start: int | None  # _stext / _text, for naming unresolved frames

    def lookup(self, address: int) -> str | None:
        """The function containing `address`, None if it lies before every
        symbol or all addresses are hidden (kptr_restrict)."""
        i = bisect.bisect_right(self.addresses, address) - 1
        if i < 0 or self.addresses[i] == 0:
            return None
        return self.names[i]

    def unresolved(self, address: int) -> str:
        if self.text_start and address >= self.text_start:
            return f"vmlinux+0x{address - self.text_start:x}"
        return f"[kernel]+0x{address:x}"


def parse_kallsyms(text: str) -> KernelSymbols:
    pairs = []
    text_start = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[1] not in TEXT_TYPES:
            continue
        try:
            address = int(fields[0], 16)
        except ValueError:
            continue
        name = fields[2]
        if name in ("_stext", "_text") and (text_start is None or name == "_stext"):
            text_start = address
        pairs.append((address, name))
    pairs.sort()
    # One name per address: the first in sorted order is stable across runs.
    addresses, names = [], []
    for address, name in pairs:
        if addresses and addresses[-1] == address:
            continue
        addresses.append(address)
        names.append(name)
    return KernelSymbols(tuple(addresses), tuple(names), text_start)


def read_kallsyms(path: str = "/proc/kallsyms") -> KernelSymbols:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_kallsyms(f.read())
    except OSError:
        return KernelSymbols((), (), None)
