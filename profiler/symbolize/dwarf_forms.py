"""DWARF's vocabulary as the source-line reader uses it: the tags,
attributes, unit types and forms it knows (DWARF 5, section 7.5), the
forms' sizes and classes, and reading an attribute's value only in the
class it must have (LLVM ignores a value of the wrong class; so do we)."""
from __future__ import annotations

# Tags and attributes read here (DWARF 5, section 7.5)
TAG_COMPILE_UNIT, TAG_PARTIAL_UNIT = 0x11, 0x3C
TAG_SUBPROGRAM, TAG_INLINED_SUBROUTINE = 0x2E, 0x1D
AT_NAME, AT_STMT_LIST, AT_LOW_PC, AT_HIGH_PC, AT_COMP_DIR = 0x03, 0x10, 0x11, 0x12, 0x1B
AT_ABSTRACT_ORIGIN, AT_DECL_LINE, AT_SPECIFICATION, AT_RANGES = 0x31, 0x3B, 0x47, 0x55
AT_CALL_COLUMN, AT_CALL_FILE, AT_CALL_LINE, AT_LINKAGE_NAME = 0x57, 0x58, 0x59, 0x6E
AT_STR_OFFSETS_BASE, AT_ADDR_BASE, AT_RNGLISTS_BASE = 0x72, 0x73, 0x74
AT_MIPS_LINKAGE_NAME, AT_GNU_RANGES_BASE, AT_GNU_ADDR_BASE = 0x2007, 0x2132, 0x2133

UT_COMPILE, UT_TYPE, UT_PARTIAL, UT_SKELETON = 0x01, 0x02, 0x03, 0x04
UT_SPLIT_COMPILE, UT_SPLIT_TYPE = 0x05, 0x06

SECTIONS = (".debug_info", ".debug_abbrev", ".debug_str", ".debug_line", ".debug_line_str",
            ".debug_ranges", ".debug_rnglists", ".debug_addr", ".debug_str_offsets",
            ".debug_aranges")

# Forms (7.5.6)
F_ADDR, F_BLOCK2, F_BLOCK4, F_DATA2, F_DATA4, F_DATA8 = 0x01, 0x03, 0x04, 0x05, 0x06, 0x07
F_STRING, F_BLOCK, F_BLOCK1, F_DATA1, F_FLAG, F_SDATA = 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D
F_STRP, F_UDATA, F_REF_ADDR, F_REF1, F_REF2, F_REF4 = 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13
F_REF8, F_REF_UDATA, F_INDIRECT, F_SEC_OFFSET, F_EXPRLOC = 0x14, 0x15, 0x16, 0x17, 0x18
F_FLAG_PRESENT, F_STRX, F_ADDRX, F_REF_SUP4, F_STRP_SUP = 0x19, 0x1A, 0x1B, 0x1C, 0x1D
F_DATA16, F_LINE_STRP, F_REF_SIG8, F_IMPLICIT_CONST = 0x1E, 0x1F, 0x20, 0x21
F_LOCLISTX, F_RNGLISTX, F_REF_SUP8 = 0x22, 0x23, 0x24
F_STRX1, F_STRX2, F_STRX3, F_STRX4 = 0x25, 0x26, 0x27, 0x28
F_ADDRX1, F_ADDRX2, F_ADDRX3, F_ADDRX4 = 0x29, 0x2A, 0x2B, 0x2C
F_GNU_ADDR_INDEX, F_GNU_STR_INDEX, F_GNU_REF_ALT, F_GNU_STRP_ALT = 0x1F01, 0x1F02, 0x1F20, 0x1F21

STRING_FORMS = frozenset((F_STRING, F_STRP, F_LINE_STRP, F_STRX, F_STRX1, F_STRX2, F_STRX3,
                          F_STRX4, F_GNU_STR_INDEX))
STRX_FORMS = {F_STRX: 0, F_STRX1: 1, F_STRX2: 2, F_STRX3: 3, F_STRX4: 4, F_GNU_STR_INDEX: 0}
ADDRX_FORMS = {F_ADDRX: 0, F_ADDRX1: 1, F_ADDRX2: 2, F_ADDRX3: 3, F_ADDRX4: 4, F_GNU_ADDR_INDEX: 0}
REF_LOCAL_SIZES = {F_REF1: 1, F_REF2: 2, F_REF4: 4, F_REF8: 8, F_REF_UDATA: 0}
CONSTANT_FORMS = {F_DATA1, F_DATA2, F_DATA4, F_DATA8, F_SDATA, F_UDATA, F_IMPLICIT_CONST}
WANTED_ATTRIBUTES = frozenset((
    AT_NAME, AT_STMT_LIST, AT_LOW_PC, AT_HIGH_PC, AT_COMP_DIR, AT_ABSTRACT_ORIGIN, AT_DECL_LINE,
    AT_SPECIFICATION, AT_RANGES, AT_CALL_COLUMN, AT_CALL_FILE, AT_CALL_LINE, AT_LINKAGE_NAME,
    AT_STR_OFFSETS_BASE, AT_ADDR_BASE, AT_RNGLISTS_BASE, AT_MIPS_LINKAGE_NAME,
    AT_GNU_RANGES_BASE, AT_GNU_ADDR_BASE))
OFFSET_FORMS = (F_SEC_OFFSET, F_DATA4, F_DATA8)  # DWARF 2-3 gave section offsets as data4/8
# sizes of the forms whose size depends on nothing (not on the unit's address
# or offset size); the others are read or measured
FIXED_SIZES = {F_DATA1: 1, F_DATA2: 2, F_DATA4: 4, F_DATA8: 8, F_DATA16: 16, F_FLAG: 1,
               F_REF1: 1, F_REF2: 2, F_REF4: 4, F_REF8: 8, F_REF_SIG8: 8, F_FLAG_PRESENT: 0,
               F_IMPLICIT_CONST: 0, F_STRX1: 1, F_STRX2: 2, F_STRX3: 3, F_STRX4: 4,
               F_ADDRX1: 1, F_ADDRX2: 2, F_ADDRX3: 3, F_ADDRX4: 4, F_REF_SUP4: 4, F_REF_SUP8: 8}


def constant(attrs: dict, attr: int, limit: int = 0xFFFFFFFF) -> int:
    """An attribute's value if it is a constant, else 0; held to `limit`
    (LLVM keeps lines in 32 bits, columns in 16)."""
    found = attrs.get(attr)
    if found is None or found[0] not in CONSTANT_FORMS or not isinstance(found[1], int):
        return 0
    return found[1] & limit


def section_offset(attrs: dict, attr: int, default: int = 0) -> int:
    """An attribute's value if it is a section offset, else `default`."""
    found = attrs.get(attr)
    if found is None or found[0] not in OFFSET_FORMS:
        return default
    return found[1]


def reference(attrs: dict, attr: int) -> int | None:
    """The .debug_info offset an attribute refers to, if it is a reference."""
    found = attrs.get(attr)
    if found is None or not (found[0] in REF_LOCAL_SIZES or found[0] == F_REF_ADDR):
        return None
    return found[1]

