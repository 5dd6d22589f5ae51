"""Raw profile -> Profile: unwound stacks named, as the pprof-shaped model.

Each distinct frame (a process's return address, or a sampled address)
becomes one Location under the Mapping that held it (a file with its
build-id, the vDSO, a JIT's anonymous memory, or the kernel), named through
the Symbolizer; what nothing names keeps its mapping, address and the text a
flame graph shows for it. A named frame in a file with DWARF gets its lines
(symbolize/lines.py, one batch per object when the profile is finished):
one Line per inline level, innermost first, each function with its file and
start line; the outermost keeps the symbol table's name. Losses, notes and
titles are computed here, once.
"""
from __future__ import annotations

import dataclasses

from profiler.model.maps import MapEntry
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping, Meta,
                                    Profile, Sample, ValueType)
from profiler.model.raw import RawProfile
from profiler.options import SymbolizeOptions
from profiler.symbolize import perfmap, summary
from profiler.symbolize.symbolizer import Frame, PathFor, Symbolizer
from profiler.unwind.stacks import unwind

KERNEL_MAPPING = "[kernel.kallsyms]"
_TIME_EVENTS = ("cpu-clock", "task-clock")


def build_profile(raw: RawProfile, path_for: PathFor | None = None,
                  options: SymbolizeOptions = SymbolizeOptions()) -> Profile:
    """`path_for`: the files the recorder kept open (None for a saved
    profile, whose files are found by the paths its memory maps named)."""
    samples, unwound = unwind(raw)
    symbolizer = Symbolizer(raw, path_for, options=options)
    builder = _Builder(symbolizer, options)
    values = _values(raw)
    out = []
    for s in samples:
        # Root first: the user stack from its entry point, then the kernel
        # from its entry to the sampled instruction; then leaf first.
        ids = [*(builder.user(s.pid, a, i == len(s.user) - 1) for i, a in enumerate(s.user)),
               *(builder.kernel(a, i == len(s.kernel) - 1) for i, a in enumerate(s.kernel))]
        ids.reverse()
        out.append(Sample(locations=tuple(ids), values=tuple(s.count * m for m in values.per_count),
                          pid=s.pid, tid=s.tid, comm=s.comm))
    profile = builder.finish(values, out, raw)
    losses = summary.losses_of(raw, unwound)
    notes = summary.notes_of(raw, unwound)
    if raw.info.call_graph == "fp":
        notes += summary.early_ends(profile)
    unresolved = sum(1 for loc in profile.locations.values() if loc.unresolved)
    meta = Meta(title=summary.title_for(raw),
                subtitle=summary.subtitle_for(raw, losses, notes),
                summary=(losses.describe(), *notes),
                warnings=tuple(symbolizer.warnings), unresolved_frames=unresolved,
                per_thread=raw.info.per_thread, empty=not out)
    return dataclasses.replace(profile, meta=meta)


@dataclasses.dataclass(frozen=True)
class _Values:
    """What a sample's values are: its count, and the event's own measure
    when the period says what a sample stands for."""

    types: tuple[ValueType, ...]
    per_count: tuple[int, ...]  # each value is the count times this
    period_type: ValueType | None = None
    period: int = 0


def _values(raw: RawProfile) -> _Values:
    info = raw.info
    samples = ValueType("samples", "count")
    if info.frequency and info.event in _TIME_EVENTS:
        period, measure = round(1e9 / info.frequency), ValueType("cpu", "nanoseconds")
    elif info.period:
        period, measure = info.period, ValueType(info.event, "count")
    else:
        return _Values((samples,), (1,))
    return _Values((samples, measure), (1, period), measure, period)


class _Builder:
    """Interns mappings, functions and locations as frames are named."""

    def __init__(self, symbolizer: Symbolizer,
                 options: SymbolizeOptions = SymbolizeOptions()) -> None:
        self._sym = symbolizer
        self._inline = options.inline
        # location id -> (id(object), vaddr): where its source lines are asked
        self._sources: dict[int, tuple[int, int]] = {}
        self._objects: dict[int, tuple] = {}  # id(object) -> (object, vaddrs)
        self.locations: dict[int, Location] = {}
        self.functions: dict[int, Function] = {}
        self.mappings: dict[int, Mapping] = {}
        self._location_ids: dict[tuple, int] = {}
        self._function_ids: dict[tuple[str, str, str, int], int] = {}
        self._mapping_ids: dict[tuple, int] = {}
        self._named: dict[int, bool] = {}  # mapping id -> some frame in it was named
        self._frames: list[tuple[int, tuple, Frame]] = []  # to demangle in one batch
        self._kernel_span: list[int] = []

    # -------------------------------------------------------------- frames

    def user(self, pid: int, address: int, leaf: bool) -> int:
        key = ("u", pid, address, leaf)
        found = self._location_ids.get(key)
        if found is not None:
            return found
        frame = self._sym.user_frame(pid, address, leaf)
        entry = self._sym.entry_of(pid, address, leaf)
        mapping = self._user_mapping(pid, entry) if entry is not None else 0
        kind = FrameKind.USER
        name = frame.name
        if frame.resolved and name.endswith(perfmap.JIT_SUFFIX) and not frame.mangled:
            kind, name = FrameKind.JIT, name[:-len(perfmap.JIT_SUFFIX)]
        i = self._location(key, address, mapping, kind, Frame(name, frame.resolved,
                                                              frame.mangled), entry)
        if frame.resolved and kind is FrameKind.USER and frame.mangled:  # named by a file
            source = self._sym.source_of(pid, address, leaf)
            if source is not None:
                obj, vaddr = source
                self._objects.setdefault(id(obj), (obj, set()))[1].add(vaddr)
                self._sources[i] = (id(obj), vaddr)
        return i

    def kernel(self, address: int, leaf: bool) -> int:
        key = ("k", address, leaf)
        found = self._location_ids.get(key)
        if found is not None:
            return found
        frame = self._sym.kernel_frame(address, leaf)
        self._kernel_span.append(address)
        mapping = self._mapping(("kernel",), lambda i: Mapping(id=i, path=KERNEL_MAPPING))
        return self._location(key, address, mapping, FrameKind.KERNEL, frame, None)

    def _location(self, key: tuple, address: int, mapping: int, kind: FrameKind, frame: Frame,
                  entry: MapEntry | None) -> int:
        i = len(self.locations) + 1
        self._location_ids[key] = i
        if frame.resolved:
            self.locations[i] = Location(id=i, mapping_id=mapping, address=address, kind=kind)
            self._frames.append((i, key, frame))
            if mapping:
                self._named[mapping] = True
        else:
            reason = "no maps" if frame.name.startswith("[no maps]") else \
                "unmapped" if frame.name.startswith("[unmapped]") else \
                "kernel addresses hidden" if kind is FrameKind.KERNEL and \
                frame.name == "[kernel]" else "no symbol"
            self.locations[i] = Location(id=i, mapping_id=mapping, address=address, kind=kind,
                                         label=frame.name, unresolved=reason)
        return i

    # -------------------------------------------------------------- mappings

    def _mapping(self, key: tuple, make) -> int:
        found = self._mapping_ids.get(key)
        if found is None:
            found = self._mapping_ids[key] = len(self.mappings) + 1
            self.mappings[found] = make(found)
        return found

    def _user_mapping(self, pid: int, entry: MapEntry) -> int:
        if entry.is_file:
            path = entry.file_path
        else:
            path = entry.path or "[anon]"
        build_id = self._sym.build_id_of(pid, entry) if entry.is_file or \
            entry.path == "[vdso]" else None
        key = (path, entry.start, entry.end, entry.offset, build_id)
        return self._mapping(key, lambda i: Mapping(
            id=i, start=entry.start, limit=entry.end, offset=entry.offset, path=path,
            build_id=build_id.hex() if build_id else ""))

    # -------------------------------------------------------------- finish

    def _function(self, name: str, system_name: str, filename: str = "",
                  start_line: int = 0) -> int:
        key = (name, system_name, filename, start_line)
        fid = self._function_ids.get(key)
        if fid is None:
            fid = self._function_ids[key] = len(self.functions) + 1
            self.functions[fid] = Function(id=fid, name=name, system_name=system_name,
                                           filename=filename, start_line=start_line)
        return fid

    def finish(self, values: _Values, samples: list[Sample], raw: RawProfile) -> Profile:
        found = self._sym.source_lines(self._objects) if self._objects else {}
        chains = {i: found.get(where, ()) for i, where in self._sources.items()}
        inner_names = {level.function for chain in chains.values() for level in chain}
        readable = self._sym.demangle_names(
            [*(f.name for _i, _k, f in self._frames if f.mangled), *inner_names])
        lined: dict[int, bool] = {}  # mapping id -> some location got lines
        inlined: dict[int, bool] = {}  # mapping id -> some location got inline frames
        for i, _key, frame in self._frames:
            shown = readable.get(frame.name, frame.name) if frame.mangled else frame.name
            loc = self.locations[i]
            chain = chains.get(i, ())
            if not chain:
                out = (Line(function_id=self._function(shown, frame.name)),)
            else:
                # The outermost level keeps the symbol table's name, as a
                # frame without debug info reads (foo.cold stays foo.cold);
                # DWARF gives its file and start line, and names the levels
                # inlined into it.
                outer = chain[-1]
                out = (Line(function_id=self._function(shown, frame.name, outer.file,
                                                       outer.start_line),
                            line=outer.line, column=outer.column),)
                if self._inline and len(chain) > 1:
                    inner = tuple(Line(function_id=self._function(
                        readable.get(level.function, level.function) or "[inlined]",
                        level.function, level.file, level.start_line),
                        line=level.line, column=level.column) for level in chain[:-1])
                    out = inner + out
                    inlined[loc.mapping_id] = True
                lined[loc.mapping_id] = True
            self.locations[i] = Location(id=i, mapping_id=loc.mapping_id, address=loc.address,
                                         kind=loc.kind, lines=out)
        mappings = {}
        for i, m in self.mappings.items():
            if m.path == KERNEL_MAPPING and self._kernel_span:
                m = Mapping(id=i, start=min(self._kernel_span), limit=max(self._kernel_span) + 1,
                            path=m.path)
            named = self._named.get(i, False)
            mappings[i] = Mapping(id=i, start=m.start, limit=m.limit, offset=m.offset,
                                  path=m.path, build_id=m.build_id, has_functions=named,
                                  has_filenames=lined.get(i, False),
                                  has_line_numbers=lined.get(i, False),
                                  has_inline_frames=inlined.get(i, False))
        info = raw.info
        return Profile(sample_types=values.types, samples=tuple(samples),
                       locations=self.locations, functions=self.functions, mappings=mappings,
                       period_type=values.period_type, period=values.period,
                       time_nanos=int(info.started * 1e9),
                       duration_nanos=int(info.duration * 1e9), default_sample_type="samples")
