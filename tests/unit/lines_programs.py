"""Programs with inlined code, built for the source-line tests, and the
oracle's (binutils addr2line) answers for their addresses."""
from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

from conftest import require

C_INLINE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile unsigned long sink;

static inline __attribute__((always_inline)) unsigned long leaf_mix(unsigned long x) {
    x ^= x >> 13;
    x *= 0x9e3779b97f4a7c15ul;
    return x ^ (x >> 29);
}

static inline __attribute__((always_inline)) unsigned long middle_step(unsigned long x, int i) {
    unsigned long y = leaf_mix(x + i);
    if (y & 1)
        y = leaf_mix(y);
    return y + (unsigned long)i;
}

static inline __attribute__((always_inline)) unsigned long outer_round(unsigned long x) {
    for (int i = 0; i < 8; i++)
        x = middle_step(x, i);
    return x;
}

static inline unsigned long parse_header(const char *s) {
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

__attribute__((noinline)) unsigned long work(unsigned long seed) {
    unsigned long acc = seed;
    for (int r = 0; r < 1000; r++)
        acc = outer_round(acc);
    return acc;
}

__attribute__((noinline)) unsigned long headers(int n) {
    char buf[64];
    unsigned long total = 0;
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "X-Header-%d: value", i);
        total += parse_header(buf);
    }
    return total;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.0;
    unsigned long n = seconds > 0 ? (unsigned long)(seconds * 20000) : 1;
    for (unsigned long i = 0; i < n; i++)
        sink += work(i) + headers(8);
    return 0;
}
"""

CPP_TEMPLATES = r"""
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

template <typename T> struct Accumulator {
    T total{};
    void add(const T &v) { total += v * v; }
};

template <typename T, typename F> T fold(const std::vector<T> &xs, F f) {
    Accumulator<T> acc;
    for (const auto &x : xs) acc.add(f(x));
    return acc.total;
}

int main(int argc, char **argv) {
    std::vector<long> xs(1000);
    std::iota(xs.begin(), xs.end(), argc);
    std::map<std::string, long> names;
    long k = 3;
    auto scale = [k](long x) { return x * k + 1; };
    std::function<long(long)> twice = [&](long x) { return scale(scale(x)); };
    for (int i = 0; i < 100; i++) {
        std::sort(xs.begin(), xs.end(), [](long a, long b) { return (a ^ 5) < (b ^ 5); });
        names[std::to_string(i)] += fold(xs, twice);
    }
    std::printf("%zu\n", names.size());
    return 0;
}
"""

RUST_PROGRAM = r"""
use std::collections::HashMap;

#[inline(always)]
fn mix(x: u64) -> u64 { let y = x ^ (x >> 13); y.wrapping_mul(0x9e3779b97f4a7c15) }

#[inline]
fn step(x: u64, i: u64) -> u64 { let y = mix(x + i); if y & 1 == 1 { mix(y) } else { y } }

#[inline(never)]
fn work(seed: u64) -> u64 { (0..1000).fold(seed, |acc, i| step(acc, i)) }

fn main() {
    let mut m: HashMap<String, u64> = HashMap::new();
    for i in 0..100u64 {
        let words: Vec<String> = (0..10).map(|j| format!("w{}", (i * j) % 17)).collect();
        for w in words { *m.entry(w).or_insert(0) += work(i); }
    }
    println!("{}", m.len());
}
"""

C_EXCLUDE = {"_start", "deregister_tm_clones", "register_tm_clones", "__do_global_dtors_aux",
             "frame_dummy", "_init", "_fini", "_dl_relocate_static_pie"}


def need(*tools: str) -> None:
    for tool in tools:
        require(shutil.which(tool) is not None, f"{tool} is not installed")


def run(cmd, **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def build_c(directory: Path, name: str, flags: list[str]) -> Path:
    need("gcc")
    src = directory / "inline_chain.c"
    src.write_text(C_INLINE)
    out = directory / name
    run(["gcc", "-O2", *flags, "-o", str(out), str(src)])
    return out


def build_cpp(directory: Path) -> Path:
    need("g++")
    src = directory / "templates.cpp"
    src.write_text(CPP_TEMPLATES)
    out = directory / "templates"
    run(["g++", "-O2", "-g", "-o", str(out), str(src)])
    return out


def build_rust(directory: Path, dwarf5: bool = False) -> Path:
    """A release build with debuginfo. `dwarf5`: LLVM's DWARF 5, the forms
    Clang writes too (strx, addrx, rnglistx with their bases in
    .debug_str_offsets, .debug_addr and .debug_rnglists; line_strp), which
    GCC does not; rustc's -Z dwarf-version needs RUSTC_BOOTSTRAP on a
    stable compiler."""
    need("rustc")
    src = directory / "lines_demo.rs"
    src.write_text(RUST_PROGRAM)
    out = directory / ("lines_demo5" if dwarf5 else "lines_demo")
    env = dict(os.environ, RUSTC_BOOTSTRAP="1") if dwarf5 else None
    run(["rustc", *(["-Z", "dwarf-version=5"] if dwarf5 else []), "-C", "opt-level=3",
         "-C", "debuginfo=2", "-o", str(out), str(src)], cwd=directory, env=env)
    return out


_FUNC = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_INSN = re.compile(r"^\s+([0-9a-f]+):\s")


def instruction_starts(path: Path | str, keep) -> list[int]:
    """Every instruction's address (objdump -d) inside functions `keep(name)`
    accepts (names as the symbol table spells them)."""
    need("objdump")
    out, current = [], None
    text = run(["objdump", "-d", "--no-show-raw-insn", str(path)])
    for line in text.splitlines():
        m = _FUNC.match(line)
        if m:
            current = m.group(2)
            continue
        m = _INSN.match(line)
        if m and current is not None and keep(current):
            out.append(int(m.group(1), 16))
    return out


def sample(addresses: list[int], n: int, seed: int = 13) -> list[int]:
    if len(addresses) <= n:
        return sorted(addresses)
    return sorted(random.Random(seed).sample(addresses, n))


Level = tuple[str, str, int]  # function (demangled), file, line


def addr2line(path: Path | str, addresses: list[int]) -> dict[int, tuple[Level, ...]]:
    """binutils' answer, one batch process: address -> levels innermost
    first, levels without a file dropped from the end (as the code under
    test reports them)."""
    need("addr2line")
    question = "".join(f"0x{a:x}\n" for a in addresses)
    text = run(["addr2line", "-a", "-f", "-i", "-C", "-e", str(path)], input=question)
    out: dict[int, list] = {}
    lines = text.splitlines()
    i, wanted = 0, iter(addresses)
    current = None
    expect = next(wanted, None)
    while i < len(lines):
        line = lines[i]
        if expect is not None and re.fullmatch(r"0x0*" + f"{expect:x}", line):
            current = out.setdefault(expect, [])
            expect = next(wanted, None)
            i += 1
            continue
        function, where = line, lines[i + 1]
        i += 2
        where = re.sub(r" \(discriminator \d+\)$", "", where)
        file, _, number = where.rpartition(":")
        current.append((function, file, int(number) if number.isdigit() else 0))
    result = {}
    for a, levels in out.items():
        kept = []
        for function, file, number in levels:
            if file in ("", "??"):
                break
            kept.append((function, os.path.normpath(file), number))
        result[a] = tuple(kept)
    return result


def libc_with_debug() -> tuple[str, str]:
    """(libc.so.6, its debug file from libc6-dbg by build-id)."""
    need("readelf")
    libc = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    require(os.path.exists(libc), "no /lib/x86_64-linux-gnu/libc.so.6")
    notes = run(["readelf", "-n", libc])
    m = re.search(r"Build ID: ([0-9a-f]+)", notes)
    require(m is not None, "libc has no build-id")
    h = m.group(1)
    debug = f"/usr/lib/debug/.build-id/{h[:2]}/{h[2:]}.debug"
    require(os.path.exists(debug), "libc6-dbg is not installed (its debug file by build-id)")
    return libc, debug


def symbol_addresses(path: Path | str) -> dict[str, set[int]]:
    """Demangled symbol name -> its addresses (nm -C), to tell aliases."""
    need("nm")
    out: dict[str, set[int]] = {}
    for line in run(["nm", "-C", "--defined-only", str(path)]).splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwWiI":
            out.setdefault(parts[2].split("@")[0], set()).add(int(parts[0], 16))
    return out


class LineRows:
    """The decoded line table (readelf --debug-dump=decodedline: binutils'
    dwarf.c, another reader than addr2line's bfd): the row covering an
    address, as (file base name, line)."""

    _ROW = re.compile(r"^(\S+)\s+(\d+|-)\s+(0x[0-9a-f]+)(?:\s|$)")

    def __init__(self, path: Path | str) -> None:
        need("readelf")
        rows = []
        text = run(["readelf", "--debug-dump=decodedline", str(path)])
        for n, line in enumerate(text.splitlines()):
            m = self._ROW.match(line)
            if m:
                number = 0 if m.group(2) == "-" else int(m.group(2))
                rows.append((int(m.group(3), 16), n, m.group(1), number, m.group(2) == "-"))
        rows.sort()
        self._addresses = [r[0] for r in rows]
        self._rows = rows

    def at(self, address: int) -> tuple[str, int] | None:
        import bisect
        i = bisect.bisect_right(self._addresses, address) - 1
        if i < 0 or self._rows[i][4]:
            return None
        return self._rows[i][2], self._rows[i][3]
