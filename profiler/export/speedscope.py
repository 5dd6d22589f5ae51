"""Profile <-> speedscope's JSON file format (https://www.speedscope.app).

The format (speedscope's src/lib/file-format-spec.ts) is a list of frames
shared by every profile of the file, then profiles:

    {"$schema": "https://www.speedscope.app/file-format-schema.json",
     "shared": {"frames": [{"name": ..., "file": ..., "line": ...}, ...]},
     "profiles": [{"type": "sampled", "name": ..., "unit": ...,
                   "startValue": 0, "endValue": TOTAL,
                   "samples": [[frame index, ...] root first, ...],
                   "weights": [weight, ...]}, ...],
     "name": ..., "activeProfileIndex": 0, "exporter": ...}

`write` makes one sampled profile per process (`comm-PID`), or per thread
(`comm-PID/TID`), heaviest first, with identical stacks merged and sorted by
name so that the output is the same byte for byte for the same profile.
Frames are named as folded stacks name them: kernel frames end in `_[k]`,
JIT frames in `_[j]`; an inline chain is several frames, the inlined callees
ending in `_[i]`. Reading, `_[k]` and `_[j]` become frame kinds again.

`read` accepts files from any producer: sampled profiles and evented ones
(open/close events; a stack weighs the time it was on top). Every problem
with the file is one `OutputError`.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
from typing import Any

from profiler.errors import OutputError
from profiler.export.folded import INLINE_SUFFIX, SUFFIX, split_kind
from profiler.model.profile import (Function, Line, Location, Meta, Profile,
                                    Sample, ValueType, sample_index)

SCHEMA = "https://www.speedscope.app/file-format-schema.json"
MAX_BYTES = 512 * 1024 * 1024
MAX_VALUE = 2**63 - 1  # what a pprof value (int64) holds


# Our units -> speedscope's. Anything else is shown as a plain number.
_UNIT_OUT = {"count": "none", "nanoseconds": "nanoseconds", "microseconds": "microseconds",
             "milliseconds": "milliseconds", "seconds": "seconds", "bytes": "bytes"}
# speedscope's units -> (our value type, factor): times become nanoseconds.
_UNIT_IN = {"none": (ValueType("samples", "count"), 1),
            "nanoseconds": (ValueType("time", "nanoseconds"), 1),
            "microseconds": (ValueType("time", "nanoseconds"), 1_000),
            "milliseconds": (ValueType("time", "nanoseconds"), 1_000_000),
            "seconds": (ValueType("time", "nanoseconds"), 1_000_000_000),
            "bytes": (ValueType("space", "bytes"), 1)}

_REMEDY = ("check that the file is a complete speedscope JSON file "
           "(https://www.speedscope.app/file-format-schema.json)")


def _exporter() -> str:
    try:
        version = importlib.metadata.version("profiler")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"profiler {version}"


# ---- writing ------------------------------------------------------------------

def _profile_name(profile: Profile, sample: Sample, per_thread: bool) -> str:
    if sample.pid:
        name = f"{sample.comm or '[unknown comm]'}-{sample.pid}"
    else:  # read from another tool: its profile's name is the comm
        name = sample.comm or profile.meta.title or "profile"
    if per_thread and (sample.tid or sample.pid):
        name += f"/{sample.tid}"
    return name


def write(profile: Profile, *, per_thread: bool = False) -> bytes:
    """The speedscope file of `profile`, counting its default sample type."""
    index = sample_index(profile, None)
    unit = "none"
    if profile.sample_types:
        unit = _UNIT_OUT.get(profile.sample_types[index].unit, "none")

    # Frames of a location, outermost first: (name, file, line) triples.
    location_frames: dict[int, list[tuple[str, str, int]]] = {}

    def frames_of(location_id: int) -> list[tuple[str, str, int]]:
        got = location_frames.get(location_id)
        if got is not None:
            return got
        loc = profile.locations[location_id]
        if not loc.lines:
            got = [(name + SUFFIX[loc.kind], "", 0) for name in profile.frame_names(loc)]
        else:
            got = []
            for line in reversed(loc.lines):  # the outermost frame has the location's kind,
                suffix = SUFFIX[loc.kind] if not got else INLINE_SUFFIX  # the rest are inlined
                function = profile.functions[line.function_id]
                got.append((function.name + suffix, function.filename,
                            line.line or function.start_line))
        location_frames[location_id] = got
        return got

    # name -> key -> (stack of frame triples root first, weight)
    groups: dict[tuple[int, int, str], dict[tuple, int]] = {}
    names: dict[tuple[int, int, str], str] = {}
    stacks: dict[tuple[int, ...], tuple] = {}
    for sample in profile.samples:
        weight = sample.values[index] if index < len(sample.values) else 0
        if weight <= 0:
            continue  # speedscope ignores weightless samples; negative ones are an error there
        key = (sample.pid, sample.tid if per_thread else 0, sample.comm)
        if key not in names:
            names[key] = _profile_name(profile, sample, per_thread)
            groups[key] = {}
        stack = stacks.get(sample.locations)
        if stack is None:
            stack = stacks[sample.locations] = tuple(
                f for loc in reversed(sample.locations) for f in frames_of(loc))
        group = groups[key]
        group[stack] = group.get(stack, 0) + weight

    ordered = sorted(groups, key=lambda k: (-sum(groups[k].values()), names[k], k))
    frame_index: dict[tuple[str, str, int], int] = {}
    frames: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for key in ordered:
        samples, weights = [], []
        for stack, weight in sorted(groups[key].items()):
            indexes = []
            for frame in stack:
                i = frame_index.get(frame)
                if i is None:
                    i = frame_index[frame] = len(frames)
                    name, file, line = frame
                    entry: dict[str, Any] = {"name": name}
                    if file:
                        entry["file"] = file
                    if line > 0:
                        entry["line"] = line
                    frames.append(entry)
                indexes.append(i)
            samples.append(indexes)
            weights.append(weight)
        profiles.append({"type": "sampled", "name": names[key], "unit": unit,
                         "startValue": 0, "endValue": sum(weights),
                         "samples": samples, "weights": weights})
    title = profile.meta.title or "profile"
    if not profiles:  # nothing sampled: still a file speedscope opens
        profiles.append({"type": "sampled", "name": title, "unit": unit, "startValue": 0,
                         "endValue": 0, "samples": [], "weights": []})
    document = {"$schema": SCHEMA, "shared": {"frames": frames}, "profiles": profiles,
                "name": title, "activeProfileIndex": 0, "exporter": _exporter()}
    return (json.dumps(document, separators=(",", ":")) + "\n").encode("ascii")


# ---- reading ------------------------------------------------------------------

def _bad(what: str) -> OutputError:
    return OutputError(f"not a valid speedscope file: {what}", _REMEDY)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _number(x: Any, where: str) -> float | int:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        if _is_number(x):
            return x
        raise _bad(f"{where} is not a finite number")
    if x is None:
        raise _bad(f"{where} is missing")
    raise _bad(f"{where} is not a number (got {type(x).__name__})")


def _index(x: Any, limit: int, where: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _bad(f"{where} is not a frame index (got {type(x).__name__})")
    if isinstance(x, float):
        if not (math.isfinite(x) and x.is_integer()):
            raise _bad(f"{where} is not a whole number")
        x = int(x)
    if not 0 <= x < limit:
        raise _bad(f"{where} is frame {x}, but the file has {limit} frames")
    return x


def _get(obj: dict, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise _bad(f"{where} has no \"{key}\"")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        wanted = kind.__name__ if isinstance(kind, type) else kind[0].__name__
        names = {"str": "a string", "list": "an array", "dict": "an object"}
        raise _bad(f"{where}.{key} is not {names.get(wanted, wanted)}")
    return value


def _parse_frames(raw: Any) -> tuple[dict[int, Location], dict[int, Function]]:
    if not isinstance(raw, list):
        raise _bad("shared.frames is not an array")
    locations: dict[int, Location] = {}
    functions: dict[int, Function] = {}
    for i, frame in enumerate(raw):
        where = f"shared.frames[{i}]"
        if not isinstance(frame, dict):
            raise _bad(f"{where} is not an object")
        name = _get(frame, "name", str, where)
        file = frame.get("file", "")
        if file is None:
            file = ""
        if not isinstance(file, str):
            raise _bad(f"{where}.file is not a string")
        numbers = []
        for key in ("line", "col"):
            value = frame.get(key)
            if value is None:
                numbers.append(0)
                continue
            value = _number(value, f"{where}.{key}")
            if value < 0 or value > 2**31:
                raise _bad(f"{where}.{key} is {value}, not a line or column number")
            numbers.append(int(value))
        line, col = numbers
        name, kind = split_kind(name)
        ident = i + 1
        functions[ident] = Function(id=ident, name=name, filename=file, start_line=line)
        lines = (Line(function_id=ident, line=line, column=col),)
        locations[ident] = Location(id=ident, lines=lines, kind=kind)
    return locations, functions


def _sampled(profile: dict, where: str, frame_count: int) -> list[tuple[tuple[int, ...], float]]:
    samples = _get(profile, "samples", list, where)
    weights = _get(profile, "weights", list, where)
    if len(samples) != len(weights):
        raise _bad(f"{where} has {len(samples)} samples but {len(weights)} weights")
    out = []
    for j, (stack, weight) in enumerate(zip(samples, weights)):
        if not isinstance(stack, list):
            raise _bad(f"{where}.samples[{j}] is not an array")
        weight = _number(weight, f"{where}.weights[{j}]")
        if weight < 0:
            raise _bad(f"{where}.weights[{j}] is negative ({weight})")
        ids = tuple(_index(x, frame_count, f"{where}.samples[{j}][{k}]") + 1
                    for k, x in enumerate(stack))
        out.append((ids, weight))
    return out


def _evented(profile: dict, where: str, frame_count: int) -> list[tuple[tuple[int, ...], float]]:
    events = _get(profile, "events", list, where)
    on_top: dict[tuple[int, ...], float] = {}
    stack: list[int] = []
    last = None
    for j, event in enumerate(events):
        here = f"{where}.events[{j}]"
        if not isinstance(event, dict):
            raise _bad(f"{here} is not an object")
        kind = _get(event, "type", str, here)
        at = _number(event.get("at"), f"{here}.at")
        frame = _index(event.get("frame"), frame_count, f"{here}.frame") + 1
        if last is not None and at < last:
            raise _bad(f"{here}.at goes back in time ({at} after {last})")
        if stack and last is not None and at > last:
            key = tuple(stack)
            on_top[key] = on_top.get(key, 0) + (at - last)
        last = at
        if kind == "O":
            stack.append(frame)
        elif kind == "C":
            if not stack:
                raise _bad(f"{here} closes frame {frame - 1}, but no frame is open")
            if stack[-1] != frame:
                raise _bad(f"{here} closes frame {frame - 1}, but frame {stack[-1] - 1} is the "
                           "innermost open one: the open/close events are unbalanced")
            stack.pop()
        else:
            raise _bad(f"{here}.type is {kind!r}, not \"O\" or \"C\"")
    if stack:
        raise _bad(f"{where} ends with {len(stack)} frames still open: the open/close events "
                   "are unbalanced")
    return list(on_top.items())


def _load(data: bytes) -> Any:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_BYTES:
        raise OutputError(f"the speedscope file is {len(data) / 2**20:.0f} MB, more than the "
                          f"{MAX_BYTES // 2**20} MB this tool reads",
                          "profile for a shorter time, or per process, to get a smaller file")
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise _bad("its JSON is nested too deeply") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad(f"invalid JSON ({e})") from None


def read(data: bytes) -> Profile:
    """The profile a speedscope file holds: its profiles' samples, with the
    profile's name as their comm (pid 0). Raises OutputError for a bad file."""
    try:
        return _read(data)
    except OutputError:
        raise
    except RecursionError:
        raise _bad("it is nested too deeply") from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, MemoryError) as e:
        raise _bad(f"{type(e).__name__}: {e}") from None


def _read(data: bytes) -> Profile:
    document = _load(data)
    if not isinstance(document, dict):
        raise _bad("the top level is not a JSON object")
    if document.get("$schema") != SCHEMA:
        raise _bad(f"\"$schema\" is {document.get('$schema')!r}, not {SCHEMA!r}")
    shared = _get(document, "shared", dict, "the file")
    locations, functions = _parse_frames(shared.get("frames"))
    raw_profiles = _get(document, "profiles", list, "the file")
    title = document.get("name", "")
    if not isinstance(title, str):
        raise _bad("name is not a string")
    active = document.get("activeProfileIndex", 0)
    if active is None:
        active = 0
    if not _is_number(active):
        raise _bad("activeProfileIndex is not a number")

    types: list[ValueType] = []
    stacks: dict[tuple[str, tuple[int, ...]], list[float]] = {}
    active_type: ValueType | None = None
    duration = 0
    for p, raw in enumerate(raw_profiles):
        where = f"profiles[{p}]"
        if not isinstance(raw, dict):
            raise _bad(f"{where} is not an object")
        kind = _get(raw, "type", str, where)
        name = _get(raw, "name", str, where)
        unit = _get(raw, "unit", str, where)
        if unit not in _UNIT_IN:
            raise _bad(f"{where}.unit is {unit!r}, not one of {', '.join(_UNIT_IN)}")
        start = _number(raw.get("startValue"), f"{where}.startValue")
        end = _number(raw.get("endValue"), f"{where}.endValue")
        value_type, factor = _UNIT_IN[unit]
        if value_type not in types:
            types.append(value_type)
        if p == active or active_type is None:
            active_type = value_type
        column = types.index(value_type)
        if kind == "evented" and value_type.unit == "nanoseconds" and end > start:
            duration = max(duration, round((end - start) * factor))  # wall time
        if kind == "sampled":
            weighted = _sampled(raw, where, len(locations))
        elif kind == "evented":
            weighted = _evented(raw, where, len(locations))
        else:
            raise _bad(f"{where}.type is {kind!r}, not \"sampled\" or \"evented\"")
        for ids, weight in weighted:
            key = (name, ids[::-1])  # leaf first
            values = stacks.get(key)
            if values is None:
                values = stacks[key] = []
            while len(values) <= column:
                values.append(0)
            values[column] += weight * factor

    samples = []
    width = len(types)
    for (comm, ids), values in stacks.items():
        rounded = tuple(round(v) for v in values) + (0,) * (width - len(values))
        if not any(rounded):
            continue
        if max(rounded) > MAX_VALUE:
            raise _bad(f"a weight of {comm!r} is larger than {MAX_VALUE}")
        samples.append(Sample(locations=ids, values=rounded, comm=comm))
    if not title and raw_profiles and isinstance(raw_profiles[0], dict):
        title = raw_profiles[0].get("name", "")
    return Profile(
        sample_types=tuple(types) or (ValueType("samples", "count"),),
        samples=tuple(samples), locations=locations, functions=functions, mappings={},
        duration_nanos=duration if duration <= MAX_VALUE else 0,
        default_sample_type=active_type.type if active_type and len(types) > 1 else "",
        meta=Meta(title=title, empty=not samples))
