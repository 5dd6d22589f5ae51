"""Writing a profile: through the format registry (profiler/export/),
atomically, and with the recording rescued when the output cannot be
written."""
from __future__ import annotations

import contextlib
import inspect
import os
import stat
import sys
import tempfile

from profiler.errors import OutputError, UsageError
from profiler.export import format_of
from profiler.model.profile import Profile
from profiler.model.raw import RawProfile
from profiler.options import Grouping, OutputFormat, SymbolizeOptions
from profiler.symbolize.build import build_profile
from profiler.symbolize.symbolizer import PathFor


def write_output(raw: RawProfile | None, path: str, fmt: OutputFormat, grouping: Grouping,
                 render_options=None, path_for: PathFor | None = None,
                 symbolize: SymbolizeOptions = SymbolizeOptions(), *,
                 profile: Profile | None = None) -> Profile | None:
    """Write `fmt` to `path` ("-" = stdout), from a raw profile (symbolized
    here) or a profile already built (read from another tool's file).
    Returns the profile written (None for raw output, which is not
    symbolized)."""
    form = format_of(fmt)
    module = form.load()
    if fmt is OutputFormat.RAW:
        if raw is None:
            raise UsageError("only a recording (a raw profile) can be written as raw JSON",
                             "choose another output format")
        _write(path, module.write_raw(raw))
        return None
    if profile is None:
        profile = build_profile(raw, path_for, symbolize)
    offered = {"grouping": grouping, "render_options": render_options,
               "per_thread": grouping is Grouping.THREAD, "srcline": symbolize.srcline}
    accepted = inspect.signature(module.write).parameters
    _write(path, module.write(profile, **{k: v for k, v in offered.items() if k in accepted}))
    return profile


def check_writable(path: str) -> None:
    """OutputError now, before recording, for an output that cannot be
    written later (a missing or read-only directory, a directory as -o)."""
    if path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            raise OutputError(f"cannot write {path}: it is a directory",
                              "give a file name with -o")
    except OSError:
        pass  # not there yet (the usual case), or not ours to look at: the directory decides
    try:
        is_dir = stat.S_ISDIR(os.stat(directory).st_mode)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {directory}: {err.strerror}",
                          "create the directory, or choose another path with -o") from None
    if not is_dir:
        raise OutputError(f"cannot write {path}: {directory} is not a directory",
                          "choose another path with -o")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {directory} is not writable",
                          "choose a writable path with -o")


def rescue_places(path: str) -> tuple[str, ...]:
    """Where a recording that cannot be written goes, as absolute paths
    decided before recording (the current directory may be removed during
    the run): beside the output, the current directory, then $TMPDIR."""
    places = []
    with contextlib.suppress(OSError):  # the current directory is already gone
        cwd = os.getcwd()
        if path != "-":
            places.append(os.path.dirname(os.path.join(cwd, path)))
        places.append(cwd)
    if path != "-" and os.path.isabs(path):
        places.insert(0, os.path.dirname(path))
    for tmp in (os.environ.get("TMPDIR", ""), tempfile.gettempdir(), "/tmp"):
        if os.path.isabs(tmp):
            places.append(tmp)
    return tuple(dict.fromkeys(os.path.normpath(p) for p in places))


def rescue(profile: RawProfile, path: str, places: tuple[str, ...] | None = None) -> str | None:
    """Save the raw profile when the output could not be written, so the
    recording is not lost: in the first of `places` (rescue_places(path),
    decided at start) that takes it. Returns the absolute path written, or
    None if nowhere would take it."""
    data = (profile.to_json() + "\n").encode()
    stem = "profile" if path == "-" else os.path.splitext(os.path.basename(path))[0]
    if places is None:
        places = rescue_places(path)
    for directory in places:
        try:
            fd, name = tempfile.mkstemp(prefix=f"{stem}.", suffix=".raw.json", dir=directory)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(name, 0o644)  # as the output itself would have been
            return name
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(name)
    return None


def _write(path: str, data: bytes) -> None:
    """Standard output completely, or a file atomically (never half a file)."""
    from flamegraph.errors import InputError
    from flamegraph.output import write_all, write_atomically
    try:
        if path == "-":
            write_all(sys.stdout.buffer, data)
        else:
            write_atomically(path, data)
    except InputError as err:  # BrokenPipeError (`-o - | head`) is no failure: it passes
        raise OutputError(str(err), "make room, or choose a writable path with -o") from None
