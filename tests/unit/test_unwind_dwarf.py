"""dwarf.unwind_stack on synthetic rows and stack bytes, glibc's real
signal-trampoline CFI over a hand-made ucontext, and end to end: a C
program copies its own stack, we unwind the copy with cfi.py, and
addr2line names the frames."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cfi_elf import sleb  # noqa: E402
from conftest import require  # noqa: E402

from profiler.binary.addresses import elf_vaddr_in, file_offset  # noqa: E402
from profiler.binary.elf import read_image_file  # noqa: E402
from profiler.model.maps import find_entry, parse_maps  # noqa: E402
from profiler.unwind import cfi, dwarf  # noqa: E402
from profiler.unwind.dwarf_expr import ExprError, evaluate  # noqa: E402

R = cfi.Rule
SP = 0x7FFD_1234_0000  # the sampled rsp: the copy starts here
RA_AT_CFA_8 = (16, R(cfi.OFFSET, -8))
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def row(cfa_reg: int, cfa_offset: int, *regs, expr: bytes = b"", signal: bool = False,
        ra: int = 16) -> cfi.Row:
    return cfi.Row(cfa_reg, cfa_offset, expr, tuple(sorted(regs)), ra, signal)


RSP = 7
RBP = 6
OUTERMOST = row(RSP, 8, (16, R(cfi.UNDEFINED)))


def stack_of(words: dict[int, int], size: int) -> bytes:
    """`size` bytes from SP, with the 8-byte words at the given offsets."""
    buf = bytearray(size)
    for off, value in words.items():
        struct.pack_into("<Q", buf, off, value)
    return bytes(buf)


# ---------------------------------------------------------------- synthetic


def test_three_frames_by_rsp_and_rbp():
    leaf, f1, f2, f3 = 0x401005, 0x402010, 0x403020, 0x404030
    fp = SP + 24  # f1 keeps rbp: its saved rbp at fp, its return address above
    words = {0: f1,                # leaf: CFA = rsp+8, nothing pushed
             8: 0xAAAA, 16: 0xBBBB,
             24: 0x5555,           # f1's saved rbp (f2's value: not a frame pointer)
             32: f2,               # f1: CFA = rbp+16
             56: f3}               # f2: CFA = rsp+24 (= SP+64), rbp unchanged
    rows = {leaf: row(RSP, 8, RA_AT_CFA_8),
            f1 - 1: row(RBP, 16, RA_AT_CFA_8, (RBP, R(cfi.OFFSET, -16))),
            f2 - 1: row(RSP, 24, RA_AT_CFA_8, (3, R(cfi.OFFSET, -16))),
            f3 - 1: OUTERMOST}
    got = dwarf.unwind_stack(leaf, SP, fp, stack_of(words, 64), rows.get)
    assert got == dwarf.Unwound((leaf, f1, f2, f3), False, "outermost", ())


def test_rows_are_asked_for_the_call_not_the_return_address():
    leaf, ret = 0x401005, 0x402010
    asked = []

    def rows(pc):
        asked.append(pc)
        return {leaf: row(RSP, 8, RA_AT_CFA_8), ret - 1: OUTERMOST}.get(pc)

    dwarf.unwind_stack(leaf, SP, 0, stack_of({0: ret}, 16), rows)
    assert asked == [leaf, ret - 1]


# GCC/binutils' .plt CFI: CFA = rsp + 8, plus 8 once the entry has pushed its index.
PLT_EXPR = bytes([0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
PLT_ROW = row(-1, 0, RA_AT_CFA_8, expr=PLT_EXPR)


@pytest.mark.parametrize("offset,ra_slot", [(0, 0), (6, 0), (10, 0), (11, 8), (15, 8)])
def test_plt_expression_in_both_halves_of_an_entry(offset, ra_slot):
    plt, caller, top = 0x401020, 0x401234, 0x401555
    ip = plt + offset
    words = {ra_slot: caller, (ra_slot + 8): top}
    if ra_slot:
        words[0] = 7  # the relocation index the entry pushed
    rows = {ip: PLT_ROW, caller - 1: row(RSP, 8 + 8, RA_AT_CFA_8)}
    rows[top - 1] = OUTERMOST
    # the caller's frame: CFA = rsp+16, RA at CFA-8 -> the word after `caller`
    words[ra_slot + 16] = top
    got = dwarf.unwind_stack(ip, SP, 0, stack_of(words, 64), rows.get)
    assert got.frames == (ip, caller, top) and got.stop == "outermost"


# glibc's x86_64 __restore_rt: CFA = *(rsp + 160) (the interrupted rsp), and
# every register saved in the ucontext at rsp + offsetof(gregs[REG_x]).
UC_RBP, UC_RSP, UC_RIP = 120, 160, 168
RESTORE_RT = row(-1, 0, (RBP, R(cfi.EXPRESSION, 0, b"\x77" + sleb(UC_RBP))),
                 (RSP, R(cfi.EXPRESSION, 0, b"\x77" + sleb(UC_RSP))),
                 (16, R(cfi.EXPRESSION, 0, b"\x77" + sleb(UC_RIP))),
                 expr=b"\x77" + sleb(UC_RSP) + b"\x06", signal=True)


def _signal_stack(trampoline: int, interrupted: int, after: int, caller: int):
    """handler's frame (RA = the trampoline), the ucontext, then the
    interrupted function's frame (CFA = rbp+16) and its caller's."""
    uc = 8  # the handler popped its return address: rsp points at the ucontext
    int_sp = 512  # where the interrupted code's rsp was
    int_fp = int_sp + 16
    words = {0: trampoline,
             uc + UC_RBP: SP + int_fp, uc + UC_RSP: SP + int_sp, uc + UC_RIP: interrupted,
             int_fp: SP + int_fp + 64, int_fp + 8: after,
             int_fp + 16 + 8: caller}
    return stack_of(words, 1024)


def _signal_rows(handler, trampoline_row, trampoline, interrupted, after, caller):
    return {handler: row(RSP, 8, RA_AT_CFA_8),
            trampoline - 1: trampoline_row,
            interrupted: row(RBP, 16, RA_AT_CFA_8, (RBP, R(cfi.OFFSET, -16))),
            after - 1: row(RSP, 16, RA_AT_CFA_8),
            caller - 1: OUTERMOST}


def test_signal_frame_restores_the_interrupted_registers():
    handler, tramp, interrupted, after, caller = 0x401100, 0x7F00_0003_C050, 0x402222, 0x403333, 0x404444
    rows = _signal_rows(handler, RESTORE_RT, tramp, interrupted, after, caller)
    stack = _signal_stack(tramp, interrupted, after, caller)
    got = dwarf.unwind_stack(handler, SP, 0, stack, rows.get)
    # `interrupted` is looked up as itself (rows has no entry at interrupted-1).
    assert got == dwarf.Unwound((handler, tramp, interrupted, after, caller), False,
                                "outermost", (2,))


def test_signal_frame_with_glibcs_own_cfi():
    require(os.path.exists(LIBC), "needs the x86_64 glibc")
    with open(LIBC, "rb") as f:
        table = cfi.cfi_from_file(f)
    # The one FDE whose CIE has the 'S' augmentation is __restore_rt's;
    # glibc starts it a byte early, for unwinders that look up pc - 1.
    import cfi_readelf
    require(shutil.which("readelf") is not None, "needs binutils (readelf)")
    fdes = [e for e in cfi_readelf.frames(LIBC)[".eh_frame"] if e.kind == "FDE"]
    found = [e for e in fdes if (r := table.row_at(e.begin + 1)) is not None and r.signal_frame]
    assert len(found) == 1
    tramp_vaddr = found[0].begin + 1
    real = table.row_at(tramp_vaddr - 1)
    assert real.signal_frame and real.cfa_reg == -1
    handler, interrupted, after, caller = 0x401100, 0x402222, 0x403333, 0x404444
    tramp = 0x7F00_0000_0000 + tramp_vaddr
    rows = _signal_rows(handler, real, tramp, interrupted, after, caller)
    got = dwarf.unwind_stack(handler, SP, 0, _signal_stack(tramp, interrupted, after, caller), rows.get)
    assert got == dwarf.Unwound((handler, tramp, interrupted, after, caller), False,
                                "outermost", (2,))


def test_frame_pointer_fallback_without_cfi():
    jit, caller, top = 0x7000_0000_1000, 0x401500, 0x401600
    fp = SP + 32
    words = {32: SP + 80, 40: caller,       # the JIT frame: [fp] = caller's fp, [fp+8] = RA
             80: 0, 88: top}                # the caller keeps rbp too; `top` is outermost
    rows = {caller - 1: row(RBP, 16, RA_AT_CFA_8, (RBP, R(cfi.OFFSET, -16))),
            top - 1: OUTERMOST}
    got = dwarf.unwind_stack(jit, SP, fp, stack_of(words, 128), rows.get)
    assert got == dwarf.Unwound((jit, caller, top), False, "outermost", ())


def test_no_cfi_and_no_frame_pointer():
    for fp in (0, SP - 8, SP + 4096, SP + 3):
        got = dwarf.unwind_stack(0x401000, SP, fp, stack_of({}, 64), {}.get)
        assert got == dwarf.Unwound((0x401000,), False, "no-cfi", ())


def test_unusable_expression_falls_back_to_the_frame_pointer():
    ip, caller, top = 0x401000, 0x402000, 0x403000
    odd = row(-1, 0, RA_AT_CFA_8, expr=b"\x77\x08\x18")  # DW_OP_xderef: not supported
    rows = {ip: odd, caller - 1: row(RSP, 16, RA_AT_CFA_8), top - 1: OUTERMOST}
    words = {16: 0, 24: caller, 40: top}
    got = dwarf.unwind_stack(ip, SP, SP + 16, stack_of(words, 64), rows.get)
    assert got == dwarf.Unwound((ip, caller, top), False, "outermost", ())


def test_truncated_copy():
    leaf, f1 = 0x401005, 0x402010
    rows = {leaf: row(RSP, 8, RA_AT_CFA_8), f1 - 1: row(RSP, 64, RA_AT_CFA_8)}
    got = dwarf.unwind_stack(leaf, SP, 0, stack_of({0: f1}, 40), rows.get)
    assert got == dwarf.Unwound((leaf, f1), True, "truncated", ())
    # A word straddling the end is cut too.
    got = dwarf.unwind_stack(leaf, SP, 0, stack_of({0: f1}, 64)[:60], rows.get)
    assert got == dwarf.Unwound((leaf, f1), True, "truncated", ())
    # The frame-pointer fallback needing [fp+8] past the end: also cut.
    got = dwarf.unwind_stack(leaf, SP, SP + 32, b"\0" * 36, {}.get)
    assert got == dwarf.Unwound((leaf,), True, "truncated", ())


def test_bad_reads():
    leaf = 0x401005
    below = {leaf: row(RSP, -16, RA_AT_CFA_8)}  # RA would be below the copy
    assert dwarf.unwind_stack(leaf, SP, 0, bytes(64), below.get).stop == "bad-read"
    crooked = {leaf: row(RSP, 12, RA_AT_CFA_8)}  # RA at a misaligned address
    assert dwarf.unwind_stack(leaf, SP, 0, bytes(64), crooked.get).stop == "bad-read"


def test_zero_pc_stops():
    leaf = 0x401005
    got = dwarf.unwind_stack(leaf, SP, 0, bytes(64), {leaf: row(RSP, 8, RA_AT_CFA_8)}.get)
    assert got == dwarf.Unwound((leaf,), False, "zero-pc", ())


def test_loop_guard():
    leaf, f1 = 0x401005, 0x402010
    # CFA = rsp + 0, RA at CFA: the caller's sp would not grow.
    rows = {leaf: row(RSP, 0, (16, R(cfi.OFFSET, 0)))}
    got = dwarf.unwind_stack(leaf, SP, 0, stack_of({0: f1}, 64), rows.get)
    assert got == dwarf.Unwound((leaf,), False, "loop", ())
    # The general path: an sp rule giving back the same sp.
    rows = {leaf: row(RSP, 8, RA_AT_CFA_8, (RSP, R(cfi.VAL_OFFSET, -8)))}
    got = dwarf.unwind_stack(leaf, SP, 0, stack_of({0: f1}, 64), rows.get)
    assert got == dwarf.Unwound((leaf,), False, "loop", ())
    # A frame-pointer chain that points at itself.
    fp = SP + 16
    got = dwarf.unwind_stack(leaf, SP, fp, stack_of({16: fp, 24: f1}, 64), {}.get)
    assert got.stop == "loop" and got.frames == (leaf, f1)


def test_epilogue_after_pop_rbp_keeps_fp():
    # After "pop %rbp" the row still says "rbp saved at CFA-16", a slot now
    # below sp: rbp already holds the caller's value (here its frame pointer).
    leaf, f1, top = 0x401005, 0x402010, 0x403000
    fp = SP + 16
    words = {0: f1, 16: 0, 24: top}
    caller = row(RBP, 16, RA_AT_CFA_8, (RBP, R(cfi.OFFSET, -16)))
    for extra in ((), ((RSP, R(cfi.VAL_OFFSET, 0)),)):  # the fast path, then the general one
        epilogue = row(RSP, 8, RA_AT_CFA_8, (RBP, R(cfi.OFFSET, -16)), *extra)
        rows = {leaf: epilogue, f1 - 1: caller, top - 1: OUTERMOST}
        got = dwarf.unwind_stack(leaf, SP, fp, stack_of(words, 64), rows.get)
        assert got == dwarf.Unwound((leaf, f1, top), False, "outermost", ()), extra


def test_absurd_addresses_are_bad_reads_not_truncation():
    leaf = 0x401005
    by_fp = {leaf: row(RBP, 16, RA_AT_CFA_8)}
    got = dwarf.unwind_stack(leaf, SP, SP + (1 << 40), bytes(64), by_fp.get)
    assert got == dwarf.Unwound((leaf,), False, "bad-read", ())
    expr = {leaf: row(-1, 0, RA_AT_CFA_8, expr=b"\x76\x00")}  # CFA = rbp (breg6 0)
    got = dwarf.unwind_stack(leaf, SP, SP + (1 << 40), bytes(64), expr.get)
    assert got == dwarf.Unwound((leaf,), False, "bad-read", ())


def test_random_stacks_and_rows_never_raise():
    import random
    rng = random.Random(99)
    shapes = [row(RSP, 8, RA_AT_CFA_8), row(RBP, 16, RA_AT_CFA_8, (RBP, R(cfi.OFFSET, -16))),
              PLT_ROW, RESTORE_RT, OUTERMOST, row(3, 8, RA_AT_CFA_8),
              row(RSP, 24, (16, R(cfi.EXPRESSION, 0, b"\x77\x08\x06")), (RBP, R(cfi.SAME))),
              row(-1, 0, RA_AT_CFA_8, expr=bytes([0x77, 8, 0x28, 0xFF, 0xFF])), None]
    for _ in range(3000):
        size = rng.choice((0, 3, 8, 64, 256, 1024))
        words = [rng.choice((0, 1, SP + rng.randrange(-64, 2048), rng.getrandbits(64),
                             0x401000 + rng.randrange(64))) for _ in range(size // 8 + 1)]
        stack = struct.pack(f"<{len(words)}Q", *words)[:size]
        table = {}

        def rows(pc, table=table):
            if pc not in table:
                table[pc] = rng.choice(shapes)
            return table[pc]

        sp = SP + rng.choice((0, 1, 4))
        got = dwarf.unwind_stack(0x401000, sp, rng.choice((0, sp + 16, SP + 8, 1 << 63)), stack,
                                 rows, max_depth=rng.choice((1, 5, 127)))
        assert got.stop in ("outermost", "depth", "truncated", "no-cfi", "bad-cfa", "zero-pc",
                            "loop", "bad-read")
        assert 1 <= len(got.frames) <= 127 and got.truncated == (got.stop == "truncated")


def test_depth_limit():
    # Every frame: CFA = rsp+16, RA at CFA-8; an endless chain of callers.
    pcs = [0x400000 + 0x100 * i for i in range(40)]
    words = {16 * i + 8: pcs[i + 1] for i in range(39)}
    same = row(RSP, 16, RA_AT_CFA_8)
    got = dwarf.unwind_stack(pcs[0], SP, 0, stack_of(words, 1024), lambda pc: same, max_depth=5)
    assert got.frames == tuple(pcs[:5]) and got.stop == "depth" and not got.truncated


def test_undefined_return_address_is_outermost():
    got = dwarf.unwind_stack(0x401000, SP, 0, bytes(8), {0x401000: OUTERMOST}.get)
    assert got == dwarf.Unwound((0x401000,), False, "outermost", ())


def test_register_and_val_offset_rules():
    # A row whose RA lives in a register (rbp here, a made-up ABI) and whose
    # sp is a VAL_OFFSET: the general path.
    leaf, ret, top = 0x401005, 0x402010, 0x403000
    rows = {leaf: row(RSP, 8, (16, R(cfi.REGISTER, RBP)), (RSP, R(cfi.VAL_OFFSET, 24))),
            ret - 1: row(RSP, 8, RA_AT_CFA_8), top - 1: OUTERMOST}
    got = dwarf.unwind_stack(leaf, SP, ret, stack_of({32: top}, 64), rows.get)
    assert got == dwarf.Unwound((leaf, ret, top), False, "outermost", ())


def test_aarch64_lr_is_the_return_address():
    # arm64: the RA column is x30 (lr); a leaf without a frame record keeps
    # it there (no rule), a non-leaf saved x29/x30 at CFA-16 / CFA-8.
    leaf, f1, f2 = 0x401004, 0x402008, 0x40300C
    a = dwarf.AARCH64
    rows = {leaf: row(a.sp, 0, ra=30),
            f1 - 1: row(a.sp, 32, (29, R(cfi.OFFSET, -16)), (30, R(cfi.OFFSET, -8)), ra=30),
            f2 - 1: row(a.sp, 16, (30, R(cfi.UNDEFINED)), ra=30)}
    got = dwarf.unwind_stack(leaf, SP, 0, stack_of({16: 0, 24: f2}, 64), rows.get,
                             arch=a, lr=f1)
    assert got == dwarf.Unwound((leaf, f1, f2), False, "outermost", ())


# ---------------------------------------------------------------- expressions


def test_expression_operators():
    regs = {7: 1000, 16: 0x401F2B}.__getitem__
    mem = {1000: 77}.__getitem__

    def ev(*ops: int, stack=()) -> int:
        return evaluate(bytes(ops), list(stack), regs, mem)

    assert ev(*PLT_EXPR) == 1000 + 8 + 8  # 0x2b & 15 = 11: the second half
    assert ev(0x77, 0, 0x06) == 77  # breg7 0; deref
    assert ev(0x35, 0x37, 0x1C) == 0xFFFFFFFFFFFFFFFE  # 5 - 7, unsigned
    assert ev(0x0B, 0xFE, 0xFF) == 0xFFFFFFFFFFFFFFFE  # const2s -2
    assert ev(0x11, 0x7E, 0x19) == 2  # consts -2; abs
    assert ev(0x38, 0x11, 0x7E, 0x1B) == (-4) & (2 ** 64 - 1)  # 8 / -2, signed
    assert ev(0x39, 0x34, 0x1D) == 1  # 9 mod 4
    assert ev(0x11, 0x70, 0x32, 0x26) == (-4) & (2 ** 64 - 1)  # -16 >> 2, arithmetic
    assert ev(0x11, 0x70, 0x32, 0x2D) == 1  # -16 < 2, signed
    assert ev(0x31, 0x32, 0x33, 0x17, 0x13, 0x13) == 3  # rot: 1 2 3 -> 3 1 2
    assert ev(0x31, 0x32, 0x15, 1) == 1  # pick 1
    assert ev(0x31, 0x28, 2, 0, 0x35, 0x96, 0x36) == 6  # bra over "lit5"
    assert ev(0x2F, 1, 0, 0x35, 0x36) == 6  # skip over "lit5"
    assert ev(0x23, 5, stack=[10]) == 15  # plus_uconst, with the CFA pushed
    assert ev(0x92, 7, 0x78) == 992  # bregx 7, -8
    for bad in ([0x06], [0x18], [0x2F, 0x10, 0], [0x28, 0xFF, 0x7F], [0x90, 7, 0x1B, 0x30],
                [0x2F, 0xFD, 0xFF]):
        with pytest.raises(ExprError):
            ev(*bad)


# ---------------------------------------------------------------- end to end

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static unsigned char copy[16384];

static void save(const char *dir, const char *name, const void *data, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) exit(3);
    fclose(f);
}

__attribute__((noinline, noclone)) int deepest(const char *dir, int n) {
    uintptr_t ip, sp, bp;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
                     : "=r"(ip), "=r"(sp), "=r"(bp));
    /* The stack's end, from our own maps: copy up to 16 KiB of it. */
    static char maps[1 << 16];
    FILE *m = fopen("/proc/self/maps", "r");
    size_t got = fread(maps, 1, sizeof maps - 1, m);
    fclose(m);
    maps[got] = 0;
    uintptr_t top = 0;
    for (char *line = maps; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : 0) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= sp && sp < hi) top = hi;
    }
    size_t len = top - sp < sizeof copy ? top - sp : sizeof copy;
    memcpy(copy, (void *)sp, len);
    char regs[128];
    int k = snprintf(regs, sizeof regs, "%lx %lx %lx\n", (unsigned long)ip, (unsigned long)sp,
                     (unsigned long)bp);
    save(dir, "regs", regs, k);
    save(dir, "stack", copy, len);
    save(dir, "maps", maps, got);
    return n + (int)len;
}

__attribute__((noinline, noclone)) int level2(const char *dir, int n) {
    volatile char pad[72];
    pad[n % 72] = (char)n;
    int r = deepest(dir, n + 1);
    return r + pad[n % 72];
}

__attribute__((noinline, noclone)) int level1(const char *dir, int n) {
    int r = level2(dir, n * 2);
    return r * 3 + 1;
}

int main(int argc, char **argv) {
    return level1(argv[1], argc) == 12345 ? 1 : 0;
}
"""


def test_end_to_end_unwind_of_a_real_stack_copy(tmp_path):
    for tool in ("gcc", "addr2line"):
        require(shutil.which(tool) is not None, f"needs {tool}")
    src = tmp_path / "selfcopy.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "selfcopy"
    subprocess.run(["gcc", "-O2", "-g", "-fomit-frame-pointer", str(src), "-o", str(exe)],
                   check=True, capture_output=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([str(exe), str(out)], check=True, timeout=30)
    ip, sp, bp = (int(w, 16) for w in (out / "regs").read_text().split())
    stack = (out / "stack").read_bytes()
    maps = parse_maps((out / "maps").read_text())

    tables: dict[str, tuple] = {}

    def where(pc: int):
        """(path, ELF vaddr) of an absolute address, through the maps."""
        entry = find_entry(maps, pc)
        if entry is None or not entry.path.startswith("/"):
            return None
        if entry.path not in tables:
            image = read_image_file(entry.path, tables=False)
            with open(entry.path, "rb") as f:
                tables[entry.path] = (cfi.cfi_from_file(f),
                                      [(s.offset, s.vaddr, s.filesz) for s in image.segments])
        table, segments = tables[entry.path]
        vaddr = elf_vaddr_in(file_offset(pc, entry.start, entry.offset), segments)
        return None if vaddr is None or table is None else (entry.path, table, vaddr)

    def rows(pc: int):
        found = where(pc)
        return found[1].row_at(found[2]) if found else None

    got = dwarf.unwind_stack(ip, sp, bp, stack, rows)
    assert got.stop == "outermost" and not got.truncated, got

    names = []
    for i, pc in enumerate(got.frames):
        path, _, vaddr = where(pc if i == 0 else pc - 1)
        line = subprocess.run(["addr2line", "-f", "-e", path, hex(vaddr)], capture_output=True,
                              text=True).stdout.split("\n")[0]
        names.append(line)
    assert names[:4] == ["deepest", "level2", "level1", "main"], names
    # Then the C library's start-up code, and the program's own _start, whose
    # CFI marks the return address undefined.
    assert names[-1] == "_start", names
    assert 6 <= len(names) <= 8, names
