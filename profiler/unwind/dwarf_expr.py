"""The small DWARF expression evaluator CFI needs (DW_CFA_def_cfa_expression,
DW_CFA_expression, DW_CFA_val_expression): a stack machine over 64-bit
unsigned values.

In practice it meets two shapes: the PLT's "CFA = rsp + 8 + (rip & 15 >= 11
? 8 : 0)" and a signal frame's "saved at rsp + k" and "CFA = *(rsp + k)".
Anything it does not know raises ExprError, so the caller treats the row
as unusable instead of guessing.
"""
from __future__ import annotations

from typing import Callable

from profiler.binary import leb128

_MASK = (1 << 64) - 1
_SIGN = 1 << 63
_MAX_STEPS = 10_000  # DW_OP_bra/skip can loop; real CFI expressions run a dozen ops
_MAX_STACK = 1_000


class ExprError(Exception):
    """An expression this evaluator cannot (or must not) compute."""


def _signed(v: int) -> int:
    return v - (1 << 64) if v & _SIGN else v


def evaluate(expr: bytes, stack: list[int], reg: Callable[[int], int],
             read: Callable[[int], int], *, order: str = "little") -> int:
    """The value on top of the stack after running `expr` on `stack`.

    reg(n): the value of DWARF register n (raises ExprError if unknown);
    read(addr): the word at addr (its own exceptions pass through)."""
    stack = list(stack)
    pos, end, steps = 0, len(expr), 0
    push, pop = stack.append, stack.pop

    def operand(n: int, signed: bool = False) -> int:
        nonlocal pos
        if pos + n > end:
            raise ExprError("truncated operand")
        v = int.from_bytes(expr[pos:pos + n], order, signed=signed)
        pos += n
        return v

    def uleb() -> int:  # a bad one raises leb128.Malformed, made ExprError below
        nonlocal pos
        value, pos = leb128.uleb(expr, pos, end)
        return value

    def sleb() -> int:
        nonlocal pos
        value, pos = leb128.sleb(expr, pos, end)
        return value

    try:
        while pos < end:
            steps += 1
            if steps > _MAX_STEPS or len(stack) > _MAX_STACK:
                raise ExprError("too long")
            op = expr[pos]
            pos += 1
            if 0x30 <= op <= 0x4F:  # lit0..31
                push(op - 0x30)
            elif 0x70 <= op <= 0x8F:  # breg0..31
                push((reg(op - 0x70) + sleb()) & _MASK)
            elif 0x50 <= op <= 0x6F:  # reg0..31: the register's value
                push(reg(op - 0x50) & _MASK)
            elif op == 0x03:  # addr
                push(operand(8))
            elif op == 0x06:  # deref
                push(read(pop()) & _MASK)
            elif op == 0x08:
                push(operand(1))
            elif op == 0x09:
                push(operand(1, True) & _MASK)
            elif op == 0x0A:
                push(operand(2))
            elif op == 0x0B:
                push(operand(2, True) & _MASK)
            elif op == 0x0C:
                push(operand(4))
            elif op == 0x0D:
                push(operand(4, True) & _MASK)
            elif op == 0x0E:
                push(operand(8))
            elif op == 0x0F:
                push(operand(8, True) & _MASK)
            elif op == 0x10:  # constu
                push(uleb() & _MASK)
            elif op == 0x11:  # consts
                push(sleb() & _MASK)
            elif op == 0x12:  # dup
                push(stack[-1])
            elif op == 0x13:  # drop
                pop()
            elif op == 0x14:  # over
                push(stack[-2])
            elif op == 0x15:  # pick
                i = operand(1)
                if i >= len(stack):
                    raise ExprError("pick past the stack")
                push(stack[-1 - i])
            elif op == 0x16:  # swap
                stack[-1], stack[-2] = stack[-2], stack[-1]
            elif op == 0x17:  # rot: top three (a b c -> c a b, top last)
                stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
            elif op == 0x19:  # abs
                push(abs(_signed(pop())) & _MASK)
            elif op == 0x1F:  # neg
                push(-_signed(pop()) & _MASK)
            elif op == 0x20:  # not
                push(~pop() & _MASK)
            elif op == 0x23:  # plus_uconst
                push((pop() + uleb()) & _MASK)
            elif 0x1A <= op <= 0x2E and op not in (0x28, 0x1F, 0x20, 0x23):
                b, a = pop(), pop()
                push(_binary(op, a, b))
            elif op == 0x2F:  # skip
                delta = operand(2, True)
                pos += delta
                if not 0 <= pos <= end:
                    raise ExprError("skip out of the expression")
            elif op == 0x28:  # bra
                delta = operand(2, True)
                if pop() != 0:
                    pos += delta
                    if not 0 <= pos <= end:
                        raise ExprError("branch out of the expression")
            elif op == 0x90:  # regx
                push(reg(uleb()) & _MASK)
            elif op == 0x92:  # bregx
                r = uleb()
                push((reg(r) + sleb()) & _MASK)
            elif op == 0x96:  # nop
                pass
            else:
                raise ExprError(f"unsupported DW_OP 0x{op:02x}")
        if not stack:
            raise ExprError("empty stack")
        return stack[-1]
    except IndexError:
        raise ExprError("stack underflow") from None
    except leb128.Malformed:
        raise ExprError("bad LEB128") from None


def _binary(op: int, a: int, b: int) -> int:
    """a OP b, with a the deeper of the two operands, as DWARF defines them."""
    if op == 0x1A:
        return a & b
    if op == 0x1B:  # div: signed
        sb = _signed(b)
        if sb == 0:
            raise ExprError("division by zero")
        sa = _signed(a)
        q = abs(sa) // abs(sb)
        return (q if (sa < 0) == (sb < 0) else -q) & _MASK
    if op == 0x1C:
        return (a - b) & _MASK
    if op == 0x1D:  # mod: unsigned
        if b == 0:
            raise ExprError("division by zero")
        return a % b
    if op == 0x1E:
        return (a * b) & _MASK
    if op == 0x21:
        return a | b
    if op == 0x22:
        return (a + b) & _MASK
    if op == 0x24:
        return (a << b) & _MASK if b < 64 else 0
    if op == 0x25:
        return a >> b if b < 64 else 0
    if op == 0x26:
        return (_signed(a) >> min(b, 63)) & _MASK
    if op == 0x27:
        return a ^ b
    sa, sb = _signed(a), _signed(b)  # relational operators compare signed values
    if op == 0x29:
        return int(sa == sb)
    if op == 0x2A:
        return int(sa >= sb)
    if op == 0x2B:
        return int(sa > sb)
    if op == 0x2C:
        return int(sa <= sb)
    if op == 0x2D:
        return int(sa < sb)
    if op == 0x2E:
        return int(sa != sb)
    raise ExprError(f"unsupported DW_OP 0x{op:02x}")
