"""speedscope files that are bad or hostile: one OutputError each, never
another exception (profiler/export/speedscope.py's reader), with cases built
by hand and by hypothesis (random and corrupted input)."""
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.errors import OutputError
from profiler.export import speedscope
from test_export_speedscope import DATA, assert_valid, evented, mixed_profile, stacks_of  # noqa: F401


# ---- bad files: one OutputError each ---------------------------------------------

def sampled(**changes):
    document = {"$schema": speedscope.SCHEMA,
                "shared": {"frames": [{"name": "a", "file": "x.py", "line": 1}, {"name": "b"}]},
                "profiles": [{"type": "sampled", "name": "p", "unit": "none", "startValue": 0,
                              "endValue": 3, "samples": [[0, 1], [0]], "weights": [2, 1]}]}
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        key = int(last) if last.isdigit() else last
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
    return json.dumps(document).encode()


def without_at(document):
    del document["profiles"][0]["events"][-1]["at"]
    return document


BAD = {
    "invalid JSON": b'{"$schema": ',
    "not UTF-8": b'\xff\xfe\xfa{}',
    "not an object": b"[1, 2]",
    "no schema": sampled(**{"$schema": KeyError}),
    "another schema": sampled(**{"$schema": "https://example.com/schema.json"}),
    "NaN": sampled().replace(b'"weights": [2, 1]', b'"weights": [NaN, 1]'),
    "Infinity": sampled().replace(b'"weights": [2, 1]', b'"weights": [1e999, 1]'),
    "no frames": sampled(**{"shared.frames": KeyError}),
    "frames not a list": sampled(**{"shared.frames": {"0": {"name": "a"}}}),
    "frame without name": sampled(**{"shared.frames.1": {"file": "x"}}),
    "frame name not a string": sampled(**{"shared.frames.1": {"name": 3}}),
    "line not a number": sampled(**{"shared.frames.0.line": "1"}),
    "negative line": sampled(**{"shared.frames.0.line": -1}),
    "no profiles": sampled(profiles=KeyError),
    "profile not an object": sampled(profiles=[[]]),
    "unknown profile type": sampled(**{"profiles.0.type": "chrome"}),
    "unknown unit": sampled(**{"profiles.0.unit": "ms"}),
    "name not a string": sampled(**{"profiles.0.name": None}),
    "no startValue": sampled(**{"profiles.0.startValue": KeyError}),
    "index out of range": sampled(**{"profiles.0.samples": [[0, 2], [0]]}),
    "negative index": sampled(**{"profiles.0.samples": [[-1], [0]]}),
    "fractional index": sampled(**{"profiles.0.samples": [[0.5], [0]]}),
    "boolean index": sampled(**{"profiles.0.samples": [[True], [0]]}),
    "stack not a list": sampled(**{"profiles.0.samples": [0, [0]]}),
    "length mismatch": sampled(**{"profiles.0.weights": [2]}),
    "negative weight": sampled(**{"profiles.0.weights": [2, -1]}),
    "string weight": sampled(**{"profiles.0.weights": [2, "1"]}),
    "huge weight": sampled(**{"profiles.0.weights": [2, 10**30]}),
    "weight overflowing a time unit": sampled(**{"profiles.0.unit": "seconds",
                                                 "profiles.0.weights": [2, 1e300]}),
    "unclosed event": json.dumps(evented([("O", 0, 0), ("O", 1, 1), ("C", 1, 2)])).encode(),
    "close without open": json.dumps(evented([("C", 0, 0)])).encode(),
    "crossed events": json.dumps(evented([("O", 0, 0), ("O", 1, 1), ("C", 0, 2),
                                          ("C", 1, 3)])).encode(),
    "time going back": json.dumps(evented([("O", 0, 5), ("C", 0, 2)])).encode(),
    "unknown event type": json.dumps(evented([("O", 0, 0), ("X", 0, 1)])).encode(),
    "event frame out of range": json.dumps(evented([("O", 3, 0), ("C", 3, 1)])).encode(),
    "event without at": json.dumps(without_at(evented([("O", 0, 0), ("C", 0, 1)]))).encode(),
    "deep nesting": b"[" * 200_000 + b"]" * 200_000,
    "deep nesting in an object": b'{"$schema": "' + speedscope.SCHEMA.encode() + b'", "x": '
                                 + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
    "huge integer text": sampled().replace(b"[2, 1]", b"[" + b"9" * 5000 + b", 1]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_raise_one_output_error(case):
    with pytest.raises(OutputError) as info:
        speedscope.read(BAD[case])
    error = info.value
    assert error.message.startswith("not a valid speedscope file: ")
    assert error.remedy
    assert "\n" not in error.message


def test_the_bad_file_cases_are_otherwise_good():
    """Each BAD case breaks one thing: the file it was made from reads."""
    assert stacks_of(speedscope.read(sampled())) == {("p", ("a", "b")): 2, ("p", ("a",)): 1}
    ok = evented([("O", 0, 0), ("O", 1, 1), ("C", 1, 2), ("C", 0, 3)])
    assert stacks_of(speedscope.read(json.dumps(ok).encode())) == {
        ("ev", ("a",)): 2_000_000, ("ev", ("a", "b")): 1_000_000}


def test_messages_say_what_is_wrong():
    def message(data):
        with pytest.raises(OutputError) as info:
            speedscope.read(data)
        return info.value.message
    assert "profiles[0] has 2 samples but 1 weights" in message(BAD["length mismatch"])
    assert "profiles[0].samples[0][1] is frame 2, but the file has 2 frames" in message(
        BAD["index out of range"])
    assert "negative" in message(BAD["negative weight"])
    assert "unbalanced" in message(BAD["unclosed event"])
    assert "unbalanced" in message(BAD["crossed events"])
    assert "nested too deeply" in message(BAD["deep nesting"])
    assert "invalid JSON" in message(BAD["invalid JSON"])


def test_a_file_over_512_mb_is_refused_before_parsing(monkeypatch):
    assert speedscope.MAX_BYTES == 512 * 2**20
    monkeypatch.setattr(speedscope, "MAX_BYTES", 100)
    data = sampled()
    assert len(data) > 100
    with pytest.raises(OutputError, match="MB"):
        speedscope.read(data)


# ---- property tests: random and corrupted input --------------------------------

def read_or_output_error(data):
    try:
        profile = speedscope.read(data)
    except OutputError as error:
        assert error.message and error.remedy
        return None
    # Whatever reads is a consistent profile that writes back.
    for s in profile.samples:
        assert len(s.values) == len(profile.sample_types)
        assert all(isinstance(v, int) and 0 <= v <= 2**63 - 1 for v in s.values)
        assert all(i in profile.locations for i in s.locations)
    assert_valid(json.loads(speedscope.write(profile)))
    return profile


VALID = [sampled(), json.dumps(evented([("O", 0, 0), ("O", 1, 1), ("O", 2, 1.5), ("C", 2, 2),
                                        ("C", 1, 2), ("C", 0, 3)])).encode(),
         (DATA / "py-spy.speedscope.json").read_bytes()[:4000],
         speedscope.write(mixed_profile())]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
                         st.sampled_from(["sampled", "evented", "O", "C", "none", "seconds",
                                          speedscope.SCHEMA]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["$schema", "shared", "frames", "profiles", "name", "type",
                                     "unit", "samples", "weights", "events", "at", "frame",
                                     "startValue", "endValue", "line", "file"]), inner,
                    max_size=6)), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data):
    read_or_output_error(data)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_random_json(value):
    read_or_output_error(json.dumps(value).encode())
    if isinstance(value, dict):
        read_or_output_error(json.dumps({**value, "$schema": speedscope.SCHEMA}).encode())


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID[:2] + VALID[3:]), st.data())
def test_structurally_corrupted_files(data, draw):
    """A value anywhere in a valid file replaced, or a key removed."""
    document = json.loads(data)
    paths = [p for p in _paths(document) if p]
    path = draw.draw(st.sampled_from(paths))
    target = document
    for part in path[:-1]:
        target = target[part]
    if draw.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = draw.draw(json_values)
    read_or_output_error(json.dumps(document).encode())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_byte_corrupted_files(data, draw):
    """Truncated, or a few bytes changed."""
    if draw.draw(st.booleans()):
        data = data[:draw.draw(st.integers(0, len(data)))]
    else:
        b = bytearray(data)
        for _ in range(draw.draw(st.integers(1, 4))):
            b[draw.draw(st.integers(0, len(b) - 1))] = draw.draw(st.integers(0, 255))
        data = bytes(b)
    read_or_output_error(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("OC"), st.integers(0, 2),
                          st.floats(0, 100, allow_nan=False)), max_size=12))
def test_random_evented_profiles(events):
    events = sorted(events, key=lambda e: e[2]) if events and events[0][2] >= 0 else events
    document = evented(events, end=100)
    profile = read_or_output_error(json.dumps(document).encode())
    if profile is not None:
        # A balanced profile: its self times add up to the time anything was open.
        busy, depth = 0, 0
        for (kind, _, at), (_, _, after) in zip(events, events[1:]):
            depth += 1 if kind == "O" else -1
            busy += (after - at) if depth else 0
        total = sum(s.values[0] for s in profile.samples)
        assert math.isclose(total, busy * 1e6, abs_tol=len(profile.samples) + 1)
