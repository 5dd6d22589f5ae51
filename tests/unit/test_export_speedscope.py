"""speedscope export and import: profiler/export/speedscope.py.

Oracles: speedscope's own JSON schema of its format (tests/data/speedscope/
file-format-schema.json, verbatim from the npm package) for what we write; a
file written by py-spy, checked against its own JSON, and evented profiles
built here by hand from the spec for what we read; the folded exporter for the
stacks.
"""
import collections
import copy
import importlib.metadata
import importlib.util
import json
import pathlib
import random

import pytest

from profiler.export import speedscope
from profiler.model.profile import (FrameKind, Function, Line, Location, Mapping, Meta, Profile,
                                    Sample, ValueType)

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "speedscope"
SCHEMA = json.loads((DATA / "file-format-schema.json").read_text())


# ---- the schema, checked by hand (the keywords speedscope's schema uses) -------

def schema_errors(value, schema=None, path="$"):
    """Where `value` breaks speedscope's JSON schema (draft-07, the subset of
    keywords it uses: $ref, anyOf, const, enum, type, properties, required,
    items). Unknown keywords fail loudly so that a newer schema is noticed."""
    if schema is None:
        schema = SCHEMA
    known = {"$schema", "$ref", "definitions", "anyOf", "const", "enum", "type", "properties",
             "required", "items", "title"}
    assert set(schema) <= known, set(schema) - known
    if "$ref" in schema:
        prefix = "#/definitions/"
        assert schema["$ref"].startswith(prefix)
        errors = schema_errors(value, SCHEMA["definitions"][schema["$ref"][len(prefix):]], path)
        if errors:
            return errors
    if "anyOf" in schema:
        if all(schema_errors(value, s, path) for s in schema["anyOf"]):
            return [f"{path}: matches none of anyOf"]
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "number": (int, float)}
    if kind is not None:
        if not isinstance(value, types[kind]) or isinstance(value, bool):
            return [f"{path}: not {kind}"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: not in {schema['enum']}"]
    errors = []
    if isinstance(value, dict):
        errors += [f"{path}: no {key}" for key in schema.get("required", ()) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def assert_valid(document):
    assert schema_errors(document) == []
    if importlib.util.find_spec("jsonschema") is not None:  # the real validator, when present
        import jsonschema
        jsonschema.validate(document, SCHEMA)
    # What the schema cannot say, from the spec's comments and speedscope's importer.
    frames = document["shared"]["frames"]
    for p in document["profiles"]:
        assert p["type"] == "sampled"
        assert len(p["samples"]) == len(p["weights"])
        assert all(0 <= i < len(frames) for stack in p["samples"] for i in stack)
        assert all(isinstance(w, int) and w > 0 for w in p["weights"])
        assert p["startValue"] == 0 and p["endValue"] == sum(p["weights"])


def test_the_schema_checker_catches_what_it_should():
    good = {"$schema": speedscope.SCHEMA, "shared": {"frames": [{"name": "a"}]},
            "profiles": [{"type": "sampled", "name": "p", "unit": "none", "startValue": 0,
                          "endValue": 1, "samples": [[0]], "weights": [1]}]}
    assert schema_errors(good) == []
    for breakage in (lambda d: d.pop("shared"),
                     lambda d: d.update({"$schema": "http://example.com"}),
                     lambda d: d["shared"]["frames"][0].pop("name"),
                     lambda d: d["shared"]["frames"][0].update(line="3"),
                     lambda d: d["profiles"][0].update(unit="ms"),
                     lambda d: d["profiles"][0].update(type="other"),
                     lambda d: d["profiles"][0]["samples"].append(["0"]),
                     lambda d: d["profiles"][0].update(weights=[True])):
        bad = copy.deepcopy(good)
        breakage(bad)
        assert schema_errors(bad), bad


# ---- model builders -------------------------------------------------------------

class Builder:
    """A Profile from stacks of names, leaf first; "name_[k]" / "name_[j]" make
    kernel / JIT frames, "name@file:line" gives a file and line, "a+b" is an
    inline chain (a calls b, inlined: innermost b), "?lib+0x10" an unresolved
    frame."""

    def __init__(self, sample_types=(ValueType("samples", "count"),), **profile):
        self.sample_types = sample_types
        self.profile = profile
        self.locations, self.functions, self.samples = {}, {}, []
        self._loc, self._fn = {}, {}

    def function(self, name, filename="", start_line=0):
        key = (name, filename, start_line)
        if key not in self._fn:
            ident = len(self._fn) + 1
            self._fn[key] = ident
            self.functions[ident] = Function(id=ident, name=name, filename=filename,
                                             start_line=start_line)
        return self._fn[key]

    def location(self, frame):
        if frame not in self._loc:
            ident = len(self._loc) + 1
            kind = FrameKind.USER
            text = frame
            for k, suffix in ((FrameKind.KERNEL, "_[k]"), (FrameKind.JIT, "_[j]")):
                if text.endswith(suffix):
                    kind, text = k, text[:-len(suffix)]
            if text.startswith("?"):
                loc = Location(id=ident, mapping_id=1, address=0x1000 + ident, kind=kind,
                               label=text[1:], unresolved="no symbols")
            else:
                lines = []
                for part in reversed(text.split("+")):  # lines innermost first
                    name, _, where = part.partition("@")
                    file, _, line = where.partition(":")
                    lines.append(Line(function_id=self.function(name, file, 1 if file else 0),
                                      line=int(line or 0)))
                loc = Location(id=ident, mapping_id=1, address=0x1000 + ident, kind=kind,
                               lines=tuple(lines))
            self.locations[ident] = loc
            self._loc[frame] = ident
        return self._loc[frame]

    def add(self, leaf_first, *values, pid=100, tid=None, comm="app"):
        self.samples.append(Sample(locations=tuple(self.location(f) for f in leaf_first),
                                   values=tuple(values), pid=pid,
                                   tid=pid if tid is None else tid, comm=comm))
        return self

    def build(self):
        return Profile(sample_types=self.sample_types, samples=tuple(self.samples),
                       locations=self.locations, functions=self.functions,
                       mappings={1: Mapping(id=1, path="/bin/app")}, **self.profile)


def mixed_profile():
    """Two processes, two threads in one, kernel, JIT, inline and unresolved
    frames, values in samples and nanoseconds (the default: the last)."""
    b = Builder((ValueType("samples", "count"), ValueType("cpu", "nanoseconds")),
                period_type=ValueType("cpu", "nanoseconds"), period=10_000_000,
                meta=Meta(title="CPU profile: 5 s"))
    b.add(["compute@app.c:12", "main@app.c:40"], 5, 50_000_000)
    b.add(["outer@lib.c+inner@lib.c:7", "main@app.c:41"], 2, 20_000_000, tid=101)
    b.add(["vfs_read_[k]", "do_syscall_64_[k]", "read@libc.c", "main@app.c:40"], 3, 30_000_000)
    b.add(["?libfoo.so+0x3c050", "main@app.c:40"], 1, 10_000_000, tid=101)
    b.add(["Interp_run_[j]", "main@app.c:40"], 4, 40_000_000, pid=200, comm="java vm")
    b.add(["compute@app.c:12", "main@app.c:40"], 2, 20_000_000)  # merged with the first
    b.add(["idle_[k]"], 0, 0, pid=300, comm="quiet")  # weightless: left out
    return b.build()


def named_stacks(document):
    """profile name -> Counter of root-first name tuples, weighted."""
    frames = document["shared"]["frames"]
    out = {}
    for p in document["profiles"]:
        c = out.setdefault(p["name"], collections.Counter())
        for stack, weight in zip(p["samples"], p["weights"]):
            c[tuple(frames[i]["name"] for i in stack)] += weight
    return out


# ---- writing ----------------------------------------------------------------------

def test_write_sampled_profiles_per_process():
    document = json.loads(speedscope.write(mixed_profile()))
    assert_valid(document)
    assert document["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert document["name"] == "CPU profile: 5 s"
    assert document["activeProfileIndex"] == 0
    assert document["exporter"] == "profiler " + importlib.metadata.version("profiler")
    assert [(p["name"], p["unit"], p["endValue"]) for p in document["profiles"]] == [
        ("app-100", "nanoseconds", 130_000_000), ("java vm-200", "nanoseconds", 40_000_000)]
    assert named_stacks(document) == {
        "app-100": {
            ("main", "compute"): 70_000_000,
            ("main", "outer", "inner_[i]"): 20_000_000,
            ("main", "read", "do_syscall_64_[k]", "vfs_read_[k]"): 30_000_000,
            ("main", "libfoo.so+0x3c050"): 10_000_000},
        "java vm-200": {("main", "Interp_run_[j]"): 40_000_000}}


def test_frames_are_shared_and_carry_file_and_line():
    document = json.loads(speedscope.write(mixed_profile()))
    frames = document["shared"]["frames"]
    keys = [(f["name"], f.get("file"), f.get("line")) for f in frames]
    assert len(keys) == len(set(keys))
    # main@app.c:40 is used by both processes and stored once; main at line 41
    # is another frame (speedscope keys frames by name, file and line).
    assert keys.count(("main", "app.c", 40)) == 1 and ("main", "app.c", 41) in keys
    used = collections.Counter(i for p in document["profiles"] for s in p["samples"] for i in s)
    assert used[keys.index(("main", "app.c", 40))] >= 2
    assert ("outer", "lib.c", 1) in keys  # no line in the Line: the function's start line
    assert ("inner_[i]", "lib.c", 7) in keys
    assert ("vfs_read_[k]", None, None) in keys and ("libfoo.so+0x3c050", None, None) in keys
    assert set(frames[keys.index(("compute", "app.c", 12))]) == {"name", "file", "line"}


def test_stacks_match_the_folded_export():
    from profiler.export import folded
    from profiler.options import Grouping
    profile = mixed_profile()
    for per_thread, grouping in ((False, Grouping.PROCESS), (True, Grouping.THREAD)):
        document = json.loads(speedscope.write(profile, per_thread=per_thread))
        ours = collections.Counter()
        for name, stacks in named_stacks(document).items():
            for stack, weight in stacks.items():
                ours[";".join((name.replace(" ", "_"),) + stack)] += weight
        theirs = collections.Counter()
        for line in folded.fold(profile, grouping):
            stack, count = line.rsplit(" ", 1)
            if int(count):
                theirs[stack] += int(count)
        assert ours == theirs


def test_per_thread_split():
    document = json.loads(speedscope.write(mixed_profile(), per_thread=True))
    assert_valid(document)
    assert [(p["name"], p["endValue"]) for p in document["profiles"]] == [
        ("app-100/100", 100_000_000), ("java vm-200/200", 40_000_000),
        ("app-100/101", 30_000_000)]
    assert named_stacks(document)["app-100/101"] == {
        ("main", "outer", "inner_[i]"): 20_000_000, ("main", "libfoo.so+0x3c050"): 10_000_000}


@pytest.mark.parametrize("unit, expected", [
    ("count", "none"), ("nanoseconds", "nanoseconds"), ("microseconds", "microseconds"),
    ("milliseconds", "milliseconds"), ("seconds", "seconds"), ("bytes", "bytes"),
    ("page-faults", "none")])
def test_units(unit, expected):
    profile = Builder((ValueType("events", unit),)).add(["f"], 7).build()
    document = json.loads(speedscope.write(profile))
    assert_valid(document)
    assert document["profiles"][0]["unit"] == expected
    assert document["profiles"][0]["weights"] == [7]


def test_the_default_sample_type_is_used():
    b = Builder((ValueType("samples", "count"), ValueType("cpu", "nanoseconds")),
                default_sample_type="samples")
    document = json.loads(speedscope.write(b.add(["f"], 3, 30).build()))
    assert (document["profiles"][0]["unit"], document["profiles"][0]["weights"]) == ("none", [3])


def test_output_is_reproducible():
    profile = mixed_profile()
    shuffled = list(profile.samples)
    random.Random(1).shuffle(shuffled)
    other = Profile(**{**profile.__dict__, "samples": tuple(shuffled)})
    assert speedscope.write(profile) == speedscope.write(other)
    assert speedscope.write(profile).endswith(b"}\n")


def test_an_empty_profile_is_still_a_file_speedscope_opens():
    profile = Builder(meta=Meta(title="nothing", empty=True)).build()
    document = json.loads(speedscope.write(profile))
    assert_valid(document)
    assert [(p["name"], p["samples"]) for p in document["profiles"]] == [("nothing", [])]
    assert speedscope.read(speedscope.write(profile)).samples == ()


def test_hostile_names_are_json_escaped():
    names = ['</script>"\\', "a;b", "\u202eevil", "line\nbreak", "\ud800"]
    b = Builder()
    for name in names:
        b.add([name.replace("+", "")], 1)
    data = speedscope.write(b.build())
    assert data.isascii()
    document = json.loads(data)
    assert sorted(f["name"] for f in document["shared"]["frames"]) == sorted(names)


# ---- round trips ----------------------------------------------------------------

def test_round_trip_keeps_names_kinds_lines_and_totals():
    profile = mixed_profile()
    for per_thread in (False, True):
        data = speedscope.write(profile, per_thread=per_thread)
        back = speedscope.read(data)
        assert back.sample_types == (ValueType("time", "nanoseconds"),)
        assert back.meta.title == "CPU profile: 5 s"
        totals = collections.Counter()
        for s in back.samples:
            totals[s.comm] += s.values[0]
            assert s.pid == 0
        assert dict(totals) == {p["name"]: p["endValue"]
                                for p in json.loads(data)["profiles"]}
        assert sum(totals.values()) == 170_000_000
        # Kinds come back from the suffixes; lines and files from the frames.
        kinds = {back.frame_names(loc)[0]: loc.kind for loc in back.locations.values()}
        assert kinds["vfs_read"] is FrameKind.KERNEL and kinds["Interp_run"] is FrameKind.JIT
        assert kinds["main"] is FrameKind.USER
        lines = {(back.functions[l.function_id].name, back.functions[l.function_id].filename,
                  l.line) for loc in back.locations.values() for l in loc.lines}
        assert {("compute", "app.c", 12), ("main", "app.c", 40), ("inner_[i]", "lib.c", 7),
                ("outer", "lib.c", 1)} <= lines
        # Written again, it is the same file.
        assert speedscope.write(back, per_thread=per_thread) == data


def test_round_trip_of_counts():
    profile = Builder().add(["b", "a"], 3).add(["c", "a"], 2, comm="x", pid=7).build()
    back = speedscope.read(speedscope.write(profile))
    assert back.sample_types == (ValueType("samples", "count"),)
    assert sorted((s.comm, tuple(back.frame_names(back.locations[i])[0] for i in s.locations),
                   s.values) for s in back.samples) == [
        ("app-100", ("b", "a"), (3,)), ("x-7", ("c", "a"), (2,))]


# ---- reading other producers' files ------------------------------------------------

def test_read_a_py_spy_file():
    raw = (DATA / "py-spy.speedscope.json").read_bytes()
    document = json.loads(raw)
    profile = speedscope.read(raw)
    assert document["exporter"].startswith("py-spy@")
    frames = document["shared"]["frames"]
    (p,) = document["profiles"]
    assert p["unit"] == "seconds" and len(p["samples"]) > 100

    # The file's own stacks, root first, in nanoseconds.
    expected = collections.Counter()
    for stack, weight in zip(p["samples"], p["weights"]):
        expected[tuple((frames[i]["name"], frames[i]["file"], frames[i]["line"])
                       for i in stack)] += weight * 1e9
    got = collections.Counter()
    for s in profile.samples:
        assert s.comm == p["name"] and s.pid == 0 and len(s.values) == 1
        key = []
        for i in reversed(s.locations):
            (line,) = profile.locations[i].lines
            function = profile.functions[line.function_id]
            assert function.start_line == line.line
            key.append((function.name, function.filename, line.line))
        got[tuple(key)] += s.values[0]
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1)
    assert sum(got.values()) == pytest.approx(sum(p["weights"]) * 1e9, abs=len(got))
    assert profile.sample_types == (ValueType("time", "nanoseconds"),)
    assert profile.meta.title == document["name"]
    # The workload's functions, all of them seen.
    names = {profile.functions[i].name for i in profile.functions}
    assert {"<module>", "main", "busy_a", "busy_b"} <= names


def evented(events, frames=("a", "b", "c"), unit="milliseconds", start=0, end=None):
    return {"$schema": speedscope.SCHEMA, "shared": {"frames": [{"name": n} for n in frames]},
            "profiles": [{"type": "evented", "name": "ev", "unit": unit, "startValue": start,
                          "endValue": end if end is not None else (events[-1][2] if events else 0),
                          "events": [{"type": t, "frame": f, "at": at} for t, f, at in events]}]}


def stacks_of(profile):
    out = collections.Counter()
    for s in profile.samples:
        out[(s.comm, tuple(profile.frame_names(profile.locations[i])[0]
                           for i in reversed(s.locations)))] += s.values[0]
    return dict(out)


def test_read_evented_self_time():
    events = [("O", 0, 0), ("O", 1, 2), ("O", 2, 3), ("C", 2, 7), ("C", 1, 8),
              ("O", 2, 10), ("C", 2, 11), ("C", 0, 15.5)]
    profile = speedscope.read(json.dumps(evented(events, start=-5, end=20)).encode())
    ms = 1_000_000
    assert stacks_of(profile) == {
        ("ev", ("a",)): int(8.5 * ms),  # 0-2, 8-10, 11-15.5
        ("ev", ("a", "b")): 2 * ms,  # 2-3, 7-8
        ("ev", ("a", "b", "c")): 4 * ms,
        ("ev", ("a", "c")): 1 * ms}
    assert profile.sample_types == (ValueType("time", "nanoseconds"),)
    assert profile.duration_nanos == 25 * ms


def test_read_evented_recursion_and_simultaneous_events():
    events = [("O", 0, 0), ("O", 0, 1), ("O", 0, 1), ("C", 0, 4), ("C", 0, 4), ("O", 1, 4),
              ("C", 1, 6), ("C", 0, 9)]
    profile = speedscope.read(json.dumps(evented(events, unit="none")).encode())
    assert profile.sample_types == (ValueType("samples", "count"),)
    assert stacks_of(profile) == {("ev", ("a",)): 1 + 3, ("ev", ("a", "a", "a")): 3,
                                  ("ev", ("a", "b")): 2}


def test_read_mixed_units_keeps_each_as_a_sample_type():
    document = evented([("O", 0, 0), ("C", 0, 2)], unit="seconds")
    document["profiles"].append({"type": "sampled", "name": "heap", "unit": "bytes",
                                 "startValue": 0, "endValue": 64, "samples": [[0, 1]],
                                 "weights": [64]})
    document["activeProfileIndex"] = 1
    profile = speedscope.read(json.dumps(document).encode())
    assert profile.sample_types == (ValueType("time", "nanoseconds"), ValueType("space", "bytes"))
    assert profile.default_sample_type == "space"
    assert sorted((s.comm, s.values) for s in profile.samples) == [
        ("ev", (2_000_000_000, 0)), ("heap", (0, 64))]


def test_read_merges_repeated_stacks_and_drops_weightless_ones():
    document = {"$schema": speedscope.SCHEMA, "shared": {"frames": [{"name": "a"}, {"name": "b"}]},
                "profiles": [{"type": "sampled", "name": "p", "unit": "microseconds",
                              "startValue": 0, "endValue": 4,
                              "samples": [[0, 1], [0], [0, 1], [1]],
                              "weights": [1.5, 1, 0.25, 0]}]}
    profile = speedscope.read(json.dumps(document).encode())
    assert stacks_of(profile) == {("p", ("a", "b")): 1750, ("p", ("a",)): 1000}
