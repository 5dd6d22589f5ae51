"""Profile -> canonical folded stacks.

One line per distinct stack, sorted: `comm;user_root;...;user_leaf;
kernel_outer_[k];...;kernel_leaf_[k] COUNT`. The first frame is the process
name, `comm-PID` per process or `comm-PID/TID` per thread, spaces made
'_' (as stackcollapse-perf writes them); a profile read from another tool
without process names has no such frame. JIT frames end in `_[j]`, inline
frames in `_[i]`. ';' inside a name becomes ':'. With `srcline`, frames
with a source line read `function (file.c:LINE)`: the line of the call for
callers (each inline level's line is where the next inner level was
called), the sampled line for the leaf.
"""
from __future__ import annotations

import os

from profiler.model.profile import FrameKind, Location, Profile, Sample, sample_index
from profiler.options import Grouping

KERNEL_SUFFIX = "_[k]"
JIT_SUFFIX = "_[j]"
INLINE_SUFFIX = "_[i]"  # as stackcollapse-perf.pl --inline marks inlined callees
SUFFIX = {FrameKind.KERNEL: KERNEL_SUFFIX, FrameKind.JIT: JIT_SUFFIX, FrameKind.USER: ""}


def split_kind(name: str) -> tuple[str, FrameKind]:
    """A frame name as folded -> (its name, its kind): `_[k]`, `_[j]` read back."""
    for kind, suffix in SUFFIX.items():
        if suffix and name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], kind
    return name, FrameKind.USER


def clean(name: str) -> str:
    """A frame name safe inside a folded line."""
    return name.replace(";", ":").replace("\n", " ").replace("\r", " ") or "[empty]"


def process_frame(sample: Sample, grouping: Grouping) -> str | None:
    if not sample.comm and not sample.pid:
        return None  # another tool's profile: no process to name
    comm = (sample.comm or "[unknown comm]").replace(" ", "_")
    if grouping is Grouping.PROCESS:
        return f"{comm}-{sample.pid}"
    if grouping is Grouping.THREAD:
        return f"{comm}-{sample.pid}/{sample.tid}"
    return comm


def location_frames(profile: Profile, loc: Location,
                    srcline: bool = False) -> list[tuple[str, str]]:
    """(frame name, "file:line" or "") per frame of one location, outermost
    first, without the kind's suffix."""
    if not loc.lines:
        return [(name, "") for name in profile.frame_names(loc)]
    out = []
    for line in reversed(loc.lines):
        function = profile.functions[line.function_id]
        where = f"{function.filename}:{line.line}" if function.filename and line.line else ""
        name = function.name
        if srcline and where:
            name += f" ({os.path.basename(function.filename)}:{line.line})"
        out.append((name, where))
    return out


def stack_frames(profile: Profile, sample: Sample, srcline: bool = False) -> list[str]:
    """A sample's frames root first, suffixed by kind, without the process."""
    return [name for name, _where in stack_sources(profile, sample, srcline)]


def stack_sources(profile: Profile, sample: Sample,
                  srcline: bool = False) -> list[tuple[str, str]]:
    """(frame, "file:line" or "") of a sample's frames, root first, as
    stack_frames names them."""
    frames = []
    locations = profile.locations
    for i in reversed(sample.locations):
        loc = locations[i]
        suffix = SUFFIX[loc.kind]
        named = location_frames(profile, loc, srcline)
        frames.append((named[0][0] + suffix, named[0][1]))
        # inlined into the one before
        frames.extend((name + INLINE_SUFFIX, where) for name, where in named[1:])
    return frames


def fold(profile: Profile, grouping: Grouping = Grouping.COMM,
         value: str | int | None = None, srcline: bool = False) -> list[str]:
    """The folded lines of a profile, counting the sample type `value`
    (default: the profile's default type, else the last, as pprof does)."""
    index = sample_index(profile, value)
    totals: dict[str, int] = {}
    done: dict[tuple[int, ...], str] = {}
    for s in profile.samples:
        body = done.get(s.locations)
        if body is None:
            body = done[s.locations] = ";".join(clean(f) for f in stack_frames(profile, s, srcline))
        head = process_frame(s, grouping)
        stack = body if head is None else (clean(head) + ";" + body if body else clean(head))
        count = s.values[index] if index < len(s.values) else 0
        totals[stack] = totals.get(stack, 0) + count
    return [f"{stack} {count}" for stack, count in sorted(totals.items()) if stack]


def frame_sources(profile: Profile, srcline: bool = False) -> dict[str, str]:
    """frame name (as folded) -> "file:line" where it was sampled most (by
    sample count), for frames with a source line: a flame graph's tooltips.
    Names stay what merges; the source only annotates them."""
    if not any(f.filename for f in profile.functions.values()):
        return {}  # no debug info anywhere: nothing to annotate, nothing to pay
    weights: dict[str, dict[str, int]] = {}
    index = sample_index(profile, None)
    stacks: dict[tuple[int, ...], int] = {}  # a stack's frames are spelled once
    for s in profile.samples:
        count = s.values[index] if index < len(s.values) else 0
        stacks[s.locations] = stacks.get(s.locations, 0) + count
    for locations, count in stacks.items():
        sample = Sample(locations=locations, values=())
        for name, where in stack_sources(profile, sample, srcline):
            if where:
                per = weights.setdefault(clean(name), {})
                per[where] = per.get(where, 0) + count
    return {name: max(sorted(per), key=per.__getitem__) for name, per in sorted(weights.items())}


def write(profile: Profile, grouping: Grouping = Grouping.COMM, srcline: bool = False,
          **_ignored) -> bytes:
    return "".join(line + "\n" for line in fold(profile, grouping, srcline=srcline)).encode()


def read(data: bytes) -> Profile:
    """Folded stacks (ours, flamegraph.pl's, inferno's) as a profile: one
    function and location per distinct frame; `_[k]`, `_[j]`, `_[i]` become
    frame kinds again, and a differential line counts its second column."""
    from flamegraph.folded import decode_lines, parse_folded, split_frames
    from profiler.model.profile import Function, Line, Location, ValueType
    folded = parse_folded(decode_lines(data))
    functions: dict[str, int] = {}
    locations: dict[tuple[str, FrameKind], int] = {}
    funcs: dict[int, Function] = {}
    locs: dict[int, Location] = {}
    samples = []
    for entry in folded.entries:
        frames = split_frames(entry.stack)
        ids = []
        for name in frames:
            name, kind = split_kind(name)
            fid = functions.get(name)
            if fid is None:
                fid = functions[name] = len(functions) + 1
                funcs[fid] = Function(id=fid, name=name, system_name=name)
            lid = locations.get((name, kind))
            if lid is None:
                lid = locations[(name, kind)] = len(locations) + 1
                locs[lid] = Location(id=lid, lines=(Line(function_id=fid),), kind=kind)
            ids.append(lid)
        value = entry.weight
        if value != int(value) or value < 0:
            continue  # a fractional or negative count is not a number of samples
        samples.append(Sample(locations=tuple(reversed(ids)), values=(int(value),)))
    return Profile(sample_types=(ValueType("samples", "count"),), samples=tuple(samples),
                   locations=locs, functions=funcs, mappings={},
                   default_sample_type="samples")
