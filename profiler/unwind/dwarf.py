"""One user stack copy + registers -> the chain of return addresses, by CFI.

The BPF program hands over ip, sp and bp and the bytes at [sp, sp + n);
this walks them with the unwind rows of the code (`rows(pc)`, from
cfi.CfiTable through the caller's pc -> object mapping). It only ever
reads the copy: an address below it or not word-aligned is a broken walk,
one past its end means the stack was cut (the caller marks it truncated).

It runs for every sample, so each distinct Row gets a precomputed plan
once: most rows say "CFA = sp or fp + k, return address at CFA + r, fp at
CFA + f or unchanged", which is two indexes into the copy viewed as
words. Only expression rows (PLT stubs, signal trampolines) and other
rare shapes take the general path. Measured warm (CPython 3.11): about
0.5 us per frame, 11 us for a 22-frame stack.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Callable, NamedTuple

from profiler.unwind import cfi
from profiler.unwind.dwarf_expr import ExprError, evaluate


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    ip: int  # DWARF register numbers
    sp: int
    fp: int
    lr: int | None
    word: int


X86_64 = Arch("x86_64", ip=16, sp=7, fp=6, lr=None, word=8)
# The pc has no DWARF column on arm64: the CIEs' return address column is lr.
AARCH64 = Arch("aarch64", ip=32, sp=31, fp=29, lr=30, word=8)


def host_arch() -> Arch:
    """The registers of this machine's user code (copies come from here)."""
    import platform
    return AARCH64 if platform.machine() in ("aarch64", "arm64") else X86_64


class Unwound(NamedTuple):
    frames: tuple[int, ...]  # absolute pcs, leaf first; return addresses as they are
    truncated: bool  # the walk needed bytes past the end of the copy
    stop: str  # why the walk ended
    signal_frames: tuple[int, ...] = ()  # indexes of exact interrupted pcs


_WORD = struct.Struct("=Q")  # native, as the words view in unwind_stack: stacks are local
_FAST, _GENERAL, _OUTERMOST = 0, 1, 2
# Per arch: id(row) -> (row, kind, cfa_from_fp, cfa_offset, ra_offset, fp_offset | None).
# The entry keeps its row alive, so the id cannot be reused while it is there.
_PLANS: dict[Arch, dict[int, tuple]] = {}
_MAX_PLANS = 1 << 16
# A read this far past the copy is a garbage address, not a cut stack: no
# thread's stack is that deep (the default limit is 8 MiB).
_ABSURD = 256 << 20


class _Stop(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Unusable(Exception):
    """This row cannot be applied here (an unknown register, an
    unsupported expression): the walk falls back to the frame pointer."""


def _plan(row: cfi.Row, arch: Arch) -> tuple:
    """(kind, cfa_from_fp, cfa_offset, ra_offset, fp_offset | None): _FAST
    for the common shapes, _OUTERMOST for an undefined return address,
    else _GENERAL."""
    general = (_GENERAL, False, 0, 0, None)
    rules = dict(row.regs)
    ra = rules.get(row.ra_column)
    if ra is not None and ra.kind == cfi.UNDEFINED:
        return (_OUTERMOST, False, 0, 0, None)
    if row.cfa_expr or row.signal_frame or row.cfa_reg not in (arch.sp, arch.fp):
        return general
    fp = rules.get(arch.fp)
    if ra is None or ra.kind != cfi.OFFSET or arch.sp in rules or \
            row.ra_column in (arch.sp, arch.fp):
        return general
    if arch.lr is not None and row.ra_column != arch.lr:
        return general
    if fp is None or fp.kind == cfi.SAME:
        fp_off = None
    elif fp.kind == cfi.OFFSET:
        fp_off = fp.value
    else:
        return general
    return (_FAST, row.cfa_reg == arch.fp, row.cfa_offset, ra.value, fp_off)


def unwind_stack(ip: int, sp: int, fp: int, stack: bytes, rows: Callable[[int], cfi.Row | None], *,
                 arch: Arch = X86_64, max_depth: int = 127, lr: int = 0) -> Unwound:
    """Walk the copy of the stack at [sp, sp + len(stack)) from the sampled
    registers; see the module docstring."""
    base, size = sp, len(stack)
    end = base + size
    align = arch.word - 1
    # The copy as native words from the first aligned address: one index
    # per read. The stack comes from this machine, so native order is its.
    shift = -base & align
    wbase = base + shift
    words = memoryview(stack)[shift:shift + max(0, size - shift) // 8 * 8].cast("Q")
    nwords = len(words)
    plans = _PLANS.get(arch)
    if plans is None:
        plans = _PLANS.setdefault(arch, {})
    frames = [ip]
    signal: list[int] = []
    pc = ip
    exact = True  # pc is the instruction itself (leaf, or after a signal frame)
    fp_known = True
    has_lr = arch.lr is not None
    lr_val: int | None = lr if has_lr else None
    while True:
        if len(frames) >= max_depth:
            return Unwound(tuple(frames), False, "depth", tuple(signal))
        row = rows(pc if exact else pc - 1)
        was_signal = False
        step = False
        if row is not None:
            plan = plans.get(id(row))
            if plan is None or plan[0] is not row:
                if len(plans) >= _MAX_PLANS:
                    plans.clear()
                plan = plans[id(row)] = (row,) + _plan(row, arch)
            _, kind, from_fp, cfa_off, ra_off, fp_off = plan
            if kind == _FAST and (fp_known or not from_fp):
                cfa = (fp if from_fp else sp) + cfa_off
                a = cfa + ra_off
                if a < base or a & align:
                    return Unwound(tuple(frames), False, "bad-read", tuple(signal))
                i = (a - wbase) >> 3
                if i >= nwords:
                    if a - end > _ABSURD:
                        return Unwound(tuple(frames), False, "bad-read", tuple(signal))
                    return Unwound(tuple(frames), True, "truncated", tuple(signal))
                new_pc = words[i]
                if fp_off is not None:
                    a = cfa + fp_off
                    if a & align:
                        return Unwound(tuple(frames), False, "bad-read", tuple(signal))
                    if a >= base:
                        i = (a - wbase) >> 3
                        if i >= nwords:
                            if a - end > _ABSURD:
                                return Unwound(tuple(frames), False, "bad-read", tuple(signal))
                            return Unwound(tuple(frames), True, "truncated", tuple(signal))
                        fp = words[i]
                        fp_known = True
                    # else: a save slot below sp was popped already (an
                    # epilogue keeps the rule): fp holds the caller's value
                new_sp = cfa
                if has_lr:
                    lr_val = new_pc
                step = True
            elif kind == _OUTERMOST:
                return Unwound(tuple(frames), False, "outermost", tuple(signal))
            else:
                try:
                    new_pc, new_sp, fp, fp_known, lr_val = _general(
                        row, pc, sp, fp if fp_known else None, lr_val, arch, stack, base)
                    step = True
                    was_signal = row.signal_frame
                except _Unusable:
                    pass
                except _Stop as stop:
                    return Unwound(tuple(frames), stop.reason == "truncated", stop.reason,
                                   tuple(signal))
        if not step:
            # No usable CFI here (JIT code, hand-written assembly): trust the
            # frame pointer chain from the last frame that kept one.
            if not fp_known or not base < fp < end or fp & align:
                return Unwound(tuple(frames), False, "no-cfi", tuple(signal))
            i = (fp - wbase) >> 3
            if i + 1 >= nwords:
                return Unwound(tuple(frames), True, "truncated", tuple(signal))
            new_sp = fp + 16
            fp, new_pc = words[i], words[i + 1]
            if has_lr:
                lr_val = new_pc
        if new_pc == 0:
            return Unwound(tuple(frames), False, "zero-pc", tuple(signal))
        # The caller's frame lies above ours. Across a signal frame sp may
        # jump anywhere; an arm64 leaf that keeps lr leaves sp where it was.
        if new_sp <= sp and not was_signal and \
                not (new_sp == sp and exact and has_lr and new_pc != pc):
            return Unwound(tuple(frames), False, "loop", tuple(signal))
        sp = new_sp
        pc = new_pc
        frames.append(pc)
        exact = was_signal
        if was_signal:
            signal.append(len(frames) - 1)


def _general(row: cfi.Row, pc: int, sp: int, fp: int | None, lr: int | None, arch: Arch,
             stack: bytes, base: int) -> tuple[int, int, int, bool, int | None]:
    """One step by any row: (pc, sp, fp, fp known, lr) of the caller."""
    size = len(stack)
    align = arch.word - 1

    def reg(n: int) -> int:
        if n == arch.sp:
            return sp
        if n == arch.fp and fp is not None:
            return fp
        if n == arch.ip:
            return pc
        if n == arch.lr and lr is not None:
            return lr
        raise _Unusable

    def read(addr: int) -> int:
        o = addr - base
        if o < 0 or addr & align or addr >> 64 or o - size > _ABSURD:
            raise _Stop("bad-read")
        if o + 8 > size:
            raise _Stop("truncated")
        return _WORD.unpack_from(stack, o)[0]

    def regv(n: int) -> int:
        try:
            return reg(n)
        except _Unusable:
            raise ExprError("unknown register") from None

    try:
        if row.cfa_expr:
            cfa = evaluate(row.cfa_expr, [], regv, read)
        elif row.cfa_reg >= 0:
            cfa = reg(row.cfa_reg) + row.cfa_offset
        else:
            raise _Unusable
        rules = dict(row.regs)

        def recover(n: int, rule: cfi.Rule | None) -> int | None:
            """The caller's value of register n; None: unknown."""
            if rule is None or rule.kind == cfi.SAME:
                try:
                    return reg(n)
                except _Unusable:
                    return None
            kind = rule.kind
            if kind == cfi.OFFSET:
                if cfa + rule.value < base and n != row.ra_column:
                    # Popped already (an epilogue keeps the save rule): the
                    # register holds the caller's value again.
                    try:
                        return reg(n)
                    except _Unusable:
                        return None
                return read(cfa + rule.value)
            if kind == cfi.VAL_OFFSET:
                return (cfa + rule.value) & 0xFFFFFFFFFFFFFFFF
            if kind == cfi.REGISTER:
                try:
                    return reg(rule.value)
                except _Unusable:
                    return None
            if kind == cfi.EXPRESSION:
                return read(evaluate(rule.expr, [cfa], regv, read))
            if kind == cfi.VAL_EXPRESSION:
                return evaluate(rule.expr, [cfa], regv, read)
            return None  # UNDEFINED

        ra_rule = rules.get(row.ra_column)
        if ra_rule is not None and ra_rule.kind == cfi.UNDEFINED:
            raise _Stop("outermost")
        if ra_rule is None and row.ra_column == arch.ip:
            raise _Unusable  # "same pc" would walk in place
        new_pc = recover(row.ra_column, ra_rule)
        if new_pc is None:
            raise _Unusable
        new_fp = recover(arch.fp, rules.get(arch.fp))
        sp_rule = rules.get(arch.sp)
        new_sp = cfa if sp_rule is None else recover(arch.sp, sp_rule)
        if new_sp is None:
            raise _Unusable
        new_lr = lr
        if arch.lr is not None:
            new_lr = new_pc if row.ra_column == arch.lr else recover(arch.lr, rules.get(arch.lr))
    except ExprError:
        raise _Unusable from None
    return new_pc, new_sp, new_fp if new_fp is not None else 0, new_fp is not None, new_lr
