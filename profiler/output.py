"""Raw profile -> folded lines, loss summary, title; and writing the output."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import sys
import tempfile
from typing import Callable

from profiler.errors import OutputError
from profiler.model import RawProfile
from profiler.options import Grouping, OutputFormat, SymbolizeOptions
from profiler.symbolize.symbolizer import PathFor, Symbolizer
from profiler.fold import fold
from profiler.unwind.stacks import UnwindSummary, unwind

RenderOptionsFactory = Callable[[str, str], object]  # (title, subtitle) -> flamegraph Options


@dataclasses.dataclass(frozen=True)
class Losses:
    samples: int  # samples taken (after the target filter)
    by_reason: dict[str, int]  # samples lost or missing a side, by reason

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())

    @property
    def percent(self) -> float:
        return 100.0 * self.total / self.samples if self.samples else 0.0

    def describe(self) -> str:
        text = f"{self.samples} samples, {self.total} lost ({self.percent:.2f}%)"
        details = [f"{n} {reason}" for reason, n in self.by_reason.items() if n]
        return text + (": " + ", ".join(details) if details else "")


@dataclasses.dataclass(frozen=True)
class Folded:
    lines: list[str]
    losses: Losses
    unresolved_frames: int
    truncated: int
    warnings: tuple[str, ...] = ()  # whole-run symbolizing problems, one line each
    notes: tuple[str, ...] = ()  # samples kept but incomplete, and the like


def notes_of(profile: RawProfile, truncated: int, copy_truncated: int = 0) -> tuple[str, ...]:
    """What is kept but incomplete: told once at the end and in the subtitle."""
    notes = []
    if truncated:
        notes.append(f"{truncated} samples with stacks cut at {profile.info.max_depth} "
                     "frames (their root frames are missing)")
    if copy_truncated:
        notes.append(f"{copy_truncated} samples with user stacks deeper than the "
                     f"{profile.info.stack_copy} bytes copied (they end in [truncated]; "
                     "--call-graph dwarf,SIZE copies more)")
    failed = profile.stats.get("user_copy_failed", 0)
    if failed:
        notes.append(f"{failed} samples whose user stack could not be read (only their "
                     "sampled function is shown)")
    lost = profile.stats.get("process_notices_lost", 0)
    if lost:
        notes.append(f"{lost} new-process notices lost (those processes' first memory "
                     "maps may be missing)")
    return tuple(notes)


def losses_of(profile: RawProfile, summary: UnwindSummary | None = None) -> Losses:
    """Every sample lost or missing a side, by reason (in-kernel counters plus
    what unwinding finds), against the samples taken."""
    if summary is None:
        summary = unwind(profile)[1]
    st = profile.stats
    dropped_stack = st.get("lost_stack_store_full", 0)
    dropped_counts = st.get("lost_counts_map_full", 0)
    taken = st.get("samples", 0)
    dropped_copies = st.get("lost_copy_ring_full", 0)
    unaccounted = max(0, taken - dropped_stack - dropped_counts - dropped_copies
                      - profile.total_counted)
    return Losses(taken, {
        "dropped (stack store full)": dropped_stack,
        "dropped (counts map full)": dropped_counts,
        "dropped (stack copy ring full)": st.get("lost_copy_ring_full", 0),
        "without user stack": summary.no_user_stack,
        "without kernel stack (walk error)": st.get("kernel_walk_errors", 0),
        "stack missing from the store": summary.missing_stack,
        "unaccounted": unaccounted,
    })


def fold_profile(profile: RawProfile, grouping: Grouping, path_for: PathFor | None = None,
                 symbolize: SymbolizeOptions = SymbolizeOptions()) -> Folded:
    """`path_for`: the files the recorder kept open (None for a saved
    profile, whose files are found by the paths the memory maps named)."""
    samples, summary = unwind(profile)
    symbolizer = Symbolizer(profile, path_for, options=symbolize)
    named = symbolizer.symbolize(samples)
    lines = fold(named, grouping)
    notes = notes_of(profile, summary.truncated, summary.copy_truncated)
    if profile.info.call_graph == "fp":
        notes += early_ends(samples, named, symbolizer.module_of)
    return Folded(lines, losses_of(profile, summary), symbolizer.unresolved, summary.truncated,
                  tuple(symbolizer.warnings), notes)


# Where whole user stacks begin: program and thread entry points (C runtime,
# glibc, musl, Go, the dynamic loader). `main` is not one: a frame-pointer
# walk that stops there has lost __libc_start_call_main.
ENTRY_FRAMES = frozenset({
    "_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main",
    "start_thread", "clone", "clone3", "__clone", "__clone3", "__clone_internal",
    "thread_start", "__thread_start", "_dl_start", "_dl_start_user", "_dl_start_final",
    "runtime.goexit", "runtime.goexit.abi0", "runtime.rt0_go", "runtime.rt0_go.abi0",
    "runtime.mstart", "runtime.mstart.abi0"})
EARLY_END_SHARE = 0.05


def early_ends(samples, named, module_of) -> tuple[str, ...]:
    """fp mode: when more than 5% of user stacks end before an entry frame,
    one note naming the objects they ended in (frame pointers stop at code
    built without them) and the remedy."""
    total = early = 0
    where: dict[str, int] = {}
    for sample, names in zip(samples, named):
        if not sample.user:
            continue
        total += sample.count
        if names.user[0] in ENTRY_FRAMES:
            continue
        early += sample.count
        # The outermost frame in a real object: a walk that left the rails
        # ends in garbage addresses, which name no object.
        modules = (module_of(sample.pid, a) for a in sample.user)
        module = next((m for m in modules if m not in ("[unmapped]", "[no maps]")), "[unmapped]")
        where[module] = where.get(module, 0) + sample.count
    if not total or early <= EARLY_END_SHARE * total:
        return ()
    ranked = sorted(where.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    objects = ", ".join(f"{m} {100 * n / early:.0f}%" for m, n in ranked)
    return (f"{100 * early / total:.0f}% of user stacks end before reaching their entry "
            f"frame (ended in {objects}): code there has no frame pointers; "
            "--call-graph dwarf unwinds through it",)


def title_for(profile: RawProfile) -> str:
    info = profile.info
    return (f"{info.target}: {info.event} at {info.describe_rate()}, "
            f"{info.duration:.1f} s")


def subtitle_for(profile: RawProfile, folded: Folded) -> str:
    parts = [folded.losses.describe(), *folded.notes]
    command = profile.info.describe_command_end()
    if command is not None:
        parts.append(f"command {command}")
    return "; ".join(parts)


NO_SAMPLES = "No samples were recorded."


def write_output(profile: RawProfile, path: str, fmt: OutputFormat, grouping: Grouping,
                 render_options: RenderOptionsFactory | None = None,
                 path_for: PathFor | None = None,
                 symbolize: SymbolizeOptions = SymbolizeOptions()) -> Folded | None:
    """Write the profile as `fmt` to `path` ("-" = stdout). Returns the folded
    form (None for raw output, which is not symbolized)."""
    if fmt is OutputFormat.RAW:
        _write(path, (profile.to_json() + "\n").encode())
        return None
    folded = fold_profile(profile, grouping, path_for, symbolize)
    if fmt is OutputFormat.FOLDED:
        _write(path, "".join(l + "\n" for l in folded.lines).encode())
        return folded
    from flamegraph.api import render
    from flamegraph.options import Options
    title, subtitle = title_for(profile), subtitle_for(profile, folded)
    options = render_options(title, subtitle) if render_options else \
        Options(title=title, subtitle=subtitle)
    options = dataclasses.replace(options, empty_message=NO_SAMPLES)
    _write(path, render(folded.lines, options).svg)
    return folded


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
