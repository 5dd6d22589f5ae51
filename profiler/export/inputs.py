"""Whatever `profiler report` and `profiler compare` are given, as a profile:
our raw recordings (symbolized then), pprof (gzipped or not, from any
producer), speedscope JSON and folded stacks, told apart by their contents."""
from __future__ import annotations

import dataclasses

from profiler.errors import BadProfileError, OutputError
from profiler.export import format_for_path
from profiler.model.profile import Profile, with_sample_type
from profiler.model.raw import MAX_RAW_BYTES, RawProfile
from profiler.options import OutputFormat

HINT = ("give a raw profile (profiler record -o x.json), a pprof file (.pb.gz), a speedscope "
        "file or folded stacks")
_COMPRESSED = {b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2"}


@dataclasses.dataclass(frozen=True)
class Input:
    raw: RawProfile | None  # a recording of ours: symbolized by the caller
    profile: Profile | None  # anything else, read already
    kind: str  # "raw", "pprof", "speedscope", "folded"


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RAW_BYTES + 1)
    except IsADirectoryError:
        raise OutputError(f"{path} is a directory, not a profile", HINT) from None
    except OSError as err:
        raise OutputError(f"cannot read {path}: {err.strerror or err}", HINT) from None
    if len(data) > MAX_RAW_BYTES:
        raise OutputError(f"{path} is larger than {MAX_RAW_BYTES >> 20} MB", HINT)
    return data


def kind_of(data: bytes) -> str:
    """What a file holds, from its first bytes."""
    if data[:2] == b"\x1f\x8b":
        return "pprof"  # gzip: pprof's usual form
    for magic, kind in _COMPRESSED.items():
        if data.startswith(magic):
            return kind
    head = data[:4096].lstrip()
    if head[:1] == b"{":
        return "raw" if b'"profiler-raw"' in data[:1 << 20] else "speedscope"
    try:
        data.decode("utf-8")
        text = b"\0" not in head
    except UnicodeDecodeError:
        text = False
    if text:
        return "folded"
    # An uncompressed protobuf starts with one of profile.proto's first
    # fields (sample_type, sample, mapping, location, function, strings).
    return "pprof" if data[:1] in (b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x2a", b"\x32") \
        else "binary"


def read_input(path: str, *, sample_type: str | int | None = None) -> Input:
    """One BadProfileError (message and remedy) for anything unreadable."""
    try:
        return _read_input(path, sample_type)
    except BadProfileError:
        raise
    except OutputError as err:
        raise BadProfileError(err.message, err.remedy) from None


def _read_input(path: str, sample_type: str | int | None) -> Input:
    data = read_bytes(path)
    kind = kind_of(data)
    if kind == "folded":  # text that is not JSON: a file named as JSON or pprof is damaged
        named = format_for_path(path)
        if named in (OutputFormat.RAW, OutputFormat.PPROF, OutputFormat.SPEEDSCOPE):
            raise OutputError(f"{path} is not a {named.value} profile (it holds plain text)",
                              HINT)
    if kind in _COMPRESSED.values():
        raise OutputError(f"{path} is {kind}-compressed", f"decompress it first, or {HINT}")
    if kind == "binary":
        at = next((i for i, b in enumerate(data[:4096]) if b == 0 or b >= 0x80), 0)
        raise OutputError(f"{path} is not a profile (binary data at byte {at})", HINT)
    if kind == "raw":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise OutputError(f"{path} is not a raw profile (binary data at byte {err.start})",
                              HINT) from None
        return Input(RawProfile.from_json(text), None, kind)
    import importlib
    profile = importlib.import_module(f"profiler.export.{kind}").read(data)
    return Input(None, with_sample_type(profile, sample_type, path), kind)
