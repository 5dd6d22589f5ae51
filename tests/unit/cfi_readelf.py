"""binutils' `readelf --debug-dump=frames-interp` as the oracle for CFI rows:
its tables parsed, and our Rows printed the way it prints its own."""
from __future__ import annotations

import bisect
import dataclasses
import re
import subprocess

from profiler.unwind import cfi

# readelf's x86_64 DWARF register names (binutils dwarf.c, dwarf_regnames_x86_64).
X86_64_NAMES = ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp"] + \
    [f"r{i}" for i in range(8, 16)] + ["rip"]
_ENTRY = re.compile(r"^([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+) (CIE|FDE)(.*)$")
_FDE = re.compile(r"cie=([0-9a-f]+) pc=([0-9a-f]+)\.\.([0-9a-f]+)")
_SECTION = re.compile(r"^Contents of the (\S+) section")


@dataclasses.dataclass
class Entry:
    offset: int
    kind: str  # "CIE" or "FDE"
    cie: int = -1
    begin: int = 0
    end: int = 0
    columns: list[str] = dataclasses.field(default_factory=list)
    rows: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)  # LOC -> column -> text


def frames(path: str) -> dict[str, list[Entry]]:
    """Section name -> its CIEs and FDEs with their row tables, as readelf
    interprets them."""
    # readelf exits 1 for a file without .debug_info, having printed the frames.
    out = subprocess.run(["readelf", "--debug-dump=frames-interp", path],
                         capture_output=True, text=True).stdout
    sections: dict[str, list[Entry]] = {}
    current: list[Entry] = []
    entry: Entry | None = None
    for line in out.splitlines():
        m = _SECTION.match(line)
        if m:
            current = sections.setdefault(m.group(1), [])
            entry = None
            continue
        m = _ENTRY.match(line)
        if m:
            entry = Entry(int(m.group(1), 16), m.group(4))
            f = _FDE.search(m.group(5))
            if f:
                entry.cie, entry.begin, entry.end = (int(g, 16) for g in f.groups())
            current.append(entry)
            continue
        # A register rule reads "r5 (rdi)": one column, named as ours are.
        words = re.sub(r"\br\d+ \((\w+)\)", r"\1", line).split()
        if entry is None or not words:
            continue
        if words[1:] == ["ZERO", "terminator"]:
            entry = None
            continue
        if words[0] == "LOC":
            entry.columns = words[1:]
        elif entry.columns and re.fullmatch(r"[0-9a-f]+", words[0]) and \
                len(words) == len(entry.columns) + 1:
            entry.rows[int(words[0], 16)] = dict(zip(entry.columns, words[1:]))
    return sections


def reg_name(n: int) -> str:
    return X86_64_NAMES[n] if 0 <= n < len(X86_64_NAMES) else f"r{n}"


def show_cfa(row: cfi.Row | None) -> str:
    if row is None:
        return "none"
    if row.cfa_reg < 0:
        return "exp"
    return f"{reg_name(row.cfa_reg)}{row.cfa_offset:+d}"


def show_rule(row: cfi.Row | None, reg: int) -> str:
    if row is None:
        return "none"
    rule = dict(row.regs).get(reg)
    if rule is None or rule.kind == cfi.UNDEFINED:
        return "u"
    return {cfi.SAME: "s", cfi.OFFSET: f"c{rule.value:+d}", cfi.VAL_OFFSET: f"v{rule.value:+d}",
            cfi.REGISTER: reg_name(rule.value), cfi.EXPRESSION: "exp",
            cfi.VAL_EXPRESSION: "vexp"}[rule.kind]


def disagreements(table: cfi.CfiTable, entries: list[Entry], limit: int = 50) -> tuple[int, list[str]]:
    """(rows checked, differences) between table.row_at and readelf for every
    row start LOC of every FDE, and LOC+1 when that is still inside the FDE.
    An FDE whose table readelf leaves out (only nops) has its CIE's row."""
    cies = {e.offset: e for e in entries if e.kind == "CIE"}
    checked, bad = 0, []
    for fde in entries:
        if fde.kind != "FDE" or fde.end <= fde.begin:
            continue
        rows = fde.rows
        if not rows:
            cie = cies.get(fde.cie)
            if cie is None or not cie.rows:
                continue
            rows = {fde.begin: next(iter(cie.rows.values()))}
        locs = sorted(rows)
        probes = set(locs) | {loc + 1 for loc in locs if loc + 1 < fde.end}
        for at in sorted(probes):
            want = rows[locs[bisect.bisect_right(locs, at) - 1]]
            row = table.row_at(at)
            got = {"CFA": show_cfa(row), "ra": show_rule(row, row.ra_column if row else 16),
                   "rbp": show_rule(row, 6)}
            expect = {"CFA": want.get("CFA"), "ra": want.get("ra", "u"), "rbp": want.get("rbp", "u")}
            checked += 1
            if got != expect and len(bad) < limit:
                bad.append(f"fde@{fde.offset:x} pc {at:#x}: readelf {expect} ours {got}")
    return checked, bad
