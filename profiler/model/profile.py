"""The symbolized profile: what every output is made from.

Shaped like pprof's profile.proto (google/pprof), so that writing pprof is a
translation and reading pprof or speedscope lands in the same place:

    Profile -> samples (values, pid/tid/comm, locations leaf first)
            -> locations (mapping, address, lines innermost first)
            -> functions (name, system name, file, start line)
            -> mappings (path, build-id, start/limit/offset, what is known)

A frame nothing could name is still a location: it keeps its mapping and
address, has no lines, and says why (`unresolved`), with the text a folded
stack shows for it (`label`, e.g. `libc.so.6+0x3c050`). Kernel frames and JIT
frames say so in `kind`, which is how folded output knows to add `_[k]` and
`_[j]`. Recording metadata (event, duration, losses, notes) travels along.
"""
from __future__ import annotations

import dataclasses
import enum


class FrameKind(enum.Enum):
    USER = "user"
    KERNEL = "kernel"
    JIT = "jit"  # named by a JIT's perf map


@dataclasses.dataclass(frozen=True)
class ValueType:
    type: str  # "samples", "cpu", "page-faults", ...
    unit: str  # "count", "nanoseconds", ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mapping:
    id: int
    start: int = 0
    limit: int = 0
    offset: int = 0
    path: str = ""  # the file, or "[kernel.kallsyms]", "[vdso]", "[anon]"
    build_id: str = ""  # hex
    has_functions: bool = False
    has_filenames: bool = False
    has_line_numbers: bool = False
    has_inline_frames: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Function:
    id: int
    name: str  # as shown: demangled
    system_name: str = ""  # as the binary spells it (mangled)
    filename: str = ""
    start_line: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Line:
    function_id: int
    line: int = 0
    column: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Location:
    id: int
    mapping_id: int = 0  # 0: no mapping known
    address: int = 0  # absolute, as sampled (a return address for callers)
    lines: tuple[Line, ...] = ()  # innermost first; () when unresolved
    kind: FrameKind = FrameKind.USER
    label: str = ""  # unresolved: the text shown, e.g. "libc.so.6+0x3c050"
    unresolved: str = ""  # why nothing names it; "" when named


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    locations: tuple[int, ...]  # location ids, leaf first
    values: tuple[int, ...]  # one per Profile.sample_types
    pid: int = 0
    tid: int = 0
    comm: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Meta:
    """What the recording says about itself: titles, losses, notes."""

    title: str = ""
    subtitle: str = ""
    summary: tuple[str, ...] = ()  # end-of-run lines: losses first, then notes
    warnings: tuple[str, ...] = ()  # whole-run problems, one line each
    unresolved_frames: int = 0  # distinct frames nothing named
    per_thread: bool = False  # samples carry thread ids
    empty: bool = False  # nothing was sampled


@dataclasses.dataclass(frozen=True, kw_only=True)
class Profile:
    sample_types: tuple[ValueType, ...]
    samples: tuple[Sample, ...]
    locations: dict[int, Location]
    functions: dict[int, Function]
    mappings: dict[int, Mapping]
    period_type: ValueType | None = None
    period: int = 0
    time_nanos: int = 0
    duration_nanos: int = 0
    default_sample_type: str = ""
    meta: Meta = Meta()

    def frame_names(self, location: Location) -> list[str]:
        """The frames one location stands for, outermost first (an inline
        chain reads caller, then callee), as folded stacks name them."""
        if not location.lines:
            return [location.label or f"[unknown]+0x{location.address:x}"]
        names = [self.functions[line.function_id].name for line in reversed(location.lines)]
        return names


def sample_index(profile: Profile, wanted: str | int | None) -> int:
    """Which value of each sample to use: an index, a sample type's name,
    or (None) the default type, else the last one (as `go tool pprof`)."""
    types = profile.sample_types
    if not types:
        return 0
    if isinstance(wanted, int):
        if not 0 <= wanted < len(types):
            raise IndexError(wanted)
        return wanted
    name = wanted if wanted is not None else profile.default_sample_type
    for i, vt in enumerate(types):
        if name and vt.type == name:
            return i
    if wanted is not None:
        raise KeyError(wanted)
    return len(types) - 1


def with_sample_type(profile: Profile, wanted: str | int | None,
                     source: str = "the profile") -> Profile:
    """The profile with the sample type to count made its default (pprof's
    `-sample_index`: a name, an index, or a digit string naming an index
    when no type has that name; by default its own default type, else the
    last). One OutputError, listing the types, for a type it lacks."""
    from profiler.errors import OutputError
    if not profile.sample_types:
        return profile
    if isinstance(wanted, str) and wanted.isdigit() and \
            all(t.type != wanted for t in profile.sample_types):
        wanted = int(wanted)
    try:
        index = sample_index(profile, wanted)
    except (IndexError, KeyError):
        names = ", ".join(f"{i}={t.type}" for i, t in enumerate(profile.sample_types))
        raise OutputError(f"{source} has no sample type {wanted!r} (it has {names})",
                          "choose one of those with --sample-index") from None
    return dataclasses.replace(profile, default_sample_type=profile.sample_types[index].type)
