"""The CFA instructions of a CIE and an FDE, run into the rows of a table:
what each register of the caller is, from each instruction on."""
from __future__ import annotations

from typing import NamedTuple

from profiler.unwind.cfi_records import Bad, Cie, Cursor, Frames, pointer


UNDEFINED, SAME, OFFSET, VAL_OFFSET, REGISTER, EXPRESSION, VAL_EXPRESSION = range(7)

MAX_ROWS = 1 << 16  # rows per FDE: more is a corrupt program, cut there
_MAX_STATES = 64  # DW_CFA_remember_state nesting


class Rule(NamedTuple):
    """How one register of the caller is recovered."""

    kind: int
    value: int = 0  # offset, or register number
    expr: bytes = b""  # for EXPRESSION / VAL_EXPRESSION


class Row(NamedTuple):
    """The unwind row in force at one instruction."""

    cfa_reg: int  # DWARF register number, or -1 when the CFA is an expression
    cfa_offset: int
    cfa_expr: bytes
    regs: tuple[tuple[int, Rule], ...]  # every register the CFI mentions, by number
    ra_column: int
    signal_frame: bool


class State:
    __slots__ = ("cfa_reg", "cfa_offset", "cfa_expr", "regs", "loc")

    def __init__(self, cfa_reg=-1, cfa_offset=0, cfa_expr=b"", regs=None) -> None:
        self.loc = 0
        self.cfa_reg, self.cfa_offset, self.cfa_expr = cfa_reg, cfa_offset, cfa_expr
        self.regs: dict[int, Rule] = regs if regs is not None else {}

    def copy(self) -> "State":
        return State(self.cfa_reg, self.cfa_offset, self.cfa_expr, dict(self.regs))


def run_program(frames: Frames, cie: Cie, start: int, end: int, state: State,
         initial: dict[int, Rule], loc: int, pc_end: int, emit) -> tuple[int, bool]:
    """Run the CFA instructions in data[start:end] from `loc`; before each
    advance, emit(loc, state) for the row that ends there. Returns the
    final location, and False if an instruction could not be read or is
    unknown there (the rest of the FDE then reads as "no row")."""
    try:
        return _steps(frames, cie, start, end, state, initial, loc, pc_end, emit), True
    except Bad:
        return state.loc, False


def _steps(frames: Frames, cie: Cie, start: int, end: int, state: State,
           initial: dict[int, Rule], loc: int, pc_end: int, emit) -> int:
    state.loc = loc
    place = frames.place
    cur = Cursor(frames.data, start, end, place.order)
    regs = state.regs
    ca, da = cie.code_align, cie.data_align
    stack: list[State] = []
    while cur.pos < end:
        op = cur.u8()
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:  # advance_loc
            delta = low * ca
        elif high == 0x80:  # offset
            regs[low] = Rule(OFFSET, cur.uleb() * da)
            continue
        elif high == 0xC0:  # restore
            _restore(regs, initial, low)
            continue
        elif op == 0x00:  # nop
            continue
        elif op == 0x01:  # set_loc
            target = pointer(cur, cie.fde_enc, place) if frames.eh else cur.uint(cie.addr_size)
            if target < loc:
                raise Bad
            delta = target - loc
        elif op == 0x02:
            delta = cur.uint(1) * ca
        elif op == 0x03:
            delta = cur.uint(2) * ca
        elif op == 0x04:
            delta = cur.uint(4) * ca
        elif op == 0x05:  # offset_extended
            reg = cur.uleb()
            regs[reg] = Rule(OFFSET, cur.uleb() * da)
            continue
        elif op == 0x06:  # restore_extended
            _restore(regs, initial, cur.uleb())
            continue
        elif op == 0x07:
            regs[cur.uleb()] = Rule(UNDEFINED)
            continue
        elif op == 0x08:
            regs[cur.uleb()] = Rule(SAME)
            continue
        elif op == 0x09:  # register
            reg = cur.uleb()
            regs[reg] = Rule(REGISTER, cur.uleb())
            continue
        elif op == 0x0A:  # remember_state
            if len(stack) >= _MAX_STATES:
                raise Bad
            stack.append(state.copy())
            continue
        elif op == 0x0B:  # restore_state: the CFA too (as GCC and readelf do)
            if not stack:
                raise Bad
            saved = stack.pop()
            state.cfa_reg, state.cfa_offset, state.cfa_expr = \
                saved.cfa_reg, saved.cfa_offset, saved.cfa_expr
            regs.clear()
            regs.update(saved.regs)
            continue
        elif op == 0x0C:  # def_cfa
            state.cfa_reg = cur.uleb()
            state.cfa_offset = cur.uleb()
            state.cfa_expr = b""
            continue
        elif op == 0x0D:  # def_cfa_register
            state.cfa_reg = cur.uleb()
            state.cfa_expr = b""
            continue
        elif op == 0x0E:  # def_cfa_offset
            state.cfa_offset = cur.uleb()
            continue
        elif op == 0x0F:  # def_cfa_expression
            state.cfa_expr = cur.block()
            state.cfa_reg = -1
            state.cfa_offset = 0
            continue
        elif op == 0x10:  # expression
            reg = cur.uleb()
            regs[reg] = Rule(EXPRESSION, 0, cur.block())
            continue
        elif op == 0x11:  # offset_extended_sf
            reg = cur.uleb()
            regs[reg] = Rule(OFFSET, cur.sleb() * da)
            continue
        elif op == 0x12:  # def_cfa_sf
            state.cfa_reg = cur.uleb()
            state.cfa_offset = cur.sleb() * da
            state.cfa_expr = b""
            continue
        elif op == 0x13:  # def_cfa_offset_sf
            state.cfa_offset = cur.sleb() * da
            continue
        elif op == 0x14:  # val_offset
            reg = cur.uleb()
            regs[reg] = Rule(VAL_OFFSET, cur.uleb() * da)
            continue
        elif op == 0x15:  # val_offset_sf
            reg = cur.uleb()
            regs[reg] = Rule(VAL_OFFSET, cur.sleb() * da)
            continue
        elif op == 0x16:  # val_expression
            reg = cur.uleb()
            regs[reg] = Rule(VAL_EXPRESSION, 0, cur.block())
            continue
        elif op == 0x2D:  # GNU_window_save (SPARC) / AARCH64_negate_ra_state: no row change here
            continue
        elif op == 0x2E:  # GNU_args_size: only matters to exception handling
            cur.uleb()
            continue
        elif op == 0x2F:  # GNU_negative_offset_extended
            reg = cur.uleb()
            regs[reg] = Rule(OFFSET, -cur.uleb() * da)
            continue
        else:
            raise Bad
        if delta:
            emit(loc, state)
            loc += delta
            state.loc = loc
            if loc >= pc_end:
                return loc
    return loc


def _restore(regs: dict[int, Rule], initial: dict[int, Rule], reg: int) -> None:
    rule = initial.get(reg)
    if rule is None:
        regs.pop(reg, None)
    else:
        regs[reg] = rule


# ---------------------------------------------------------------- one section
