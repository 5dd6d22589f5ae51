"""What a recording lost and what it kept incomplete, computed once: the
end-of-run summary, the SVG's subtitle and the profile's metadata all read
these figures."""
from __future__ import annotations

import dataclasses
import os

from profiler.model.profile import FrameKind, Profile
from profiler.model.raw import STACK_LIMIT_FRAME, RawProfile
from profiler.unwind.stacks import UnwindSummary, unwind

NO_SAMPLES = "No samples were recorded."


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


def losses_of(profile: RawProfile, summary: UnwindSummary | None = None) -> Losses:
    """Every sample lost or missing a side, by reason (in-kernel counters plus
    what unwinding finds), against the samples taken."""
    if summary is None:
        summary = unwind(profile)[1]
    st = profile.stats
    dropped_stack = st.get("lost_stack_store_full", 0)
    dropped_counts = st.get("lost_counts_map_full", 0)
    dropped_copies = st.get("lost_copy_ring_full", 0)
    taken = st.get("samples", 0)
    unaccounted = max(0, taken - dropped_stack - dropped_counts - dropped_copies
                      - profile.total_counted)
    return Losses(taken, {
        "dropped (stack store full)": dropped_stack,
        "dropped (counts map full)": dropped_counts,
        "dropped (stack copy ring full)": dropped_copies,
        "without user stack": summary.no_user_stack,
        "without kernel stack (walk error)": st.get("kernel_walk_errors", 0),
        "stack missing from the store": summary.missing_stack,
        "unaccounted": unaccounted,
    })


def notes_of(profile: RawProfile, unwound: UnwindSummary) -> tuple[str, ...]:
    """What is kept but incomplete: told once at the end and in the subtitle."""
    notes = []
    truncated, copy_truncated, over_limit = \
        unwound.truncated, unwound.copy_truncated, unwound.over_limit
    if over_limit:
        limit = f"its {profile.info.max_stacks}" if profile.info.max_stacks else "its limit of"
        notes.append(f"{over_limit} samples of stacks first seen after the run held {limit} "
                     "distinct stacks (each drawn as one [stack limit] frame under its "
                     "process; --max-stacks raises the limit)")
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
    records = profile.stats.get("mapping_records_lost", 0)
    if records:
        notes.append(f"{records} of the kernel's records of processes' mappings were lost "
                     "(a process that lived only milliseconds may read [unmapped])")
    lost = profile.stats.get("process_notices_lost", 0)
    if lost:
        notes.append(f"{lost} new-process notices lost (those processes' first memory "
                     "maps may be missing)")
    return tuple(notes)


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


def early_ends(profile: Profile) -> tuple[str, ...]:
    """fp mode: when more than 5% of user stacks end before an entry frame,
    one note naming the objects they ended in (frame pointers stop at code
    built without them) and the remedy."""
    total = early = 0
    where: dict[str, int] = {}
    locations, mappings = profile.locations, profile.mappings
    for sample in profile.samples:
        user = [locations[i] for i in reversed(sample.locations)
                if locations[i].kind is not FrameKind.KERNEL]  # root first
        if not user:
            continue
        root = profile.frame_names(user[0])[0]
        if root == STACK_LIMIT_FRAME:  # not walked short: merged past --max-stacks
            continue
        count = sample.values[0]
        total += count
        if root in ENTRY_FRAMES:
            continue
        early += count
        # The outermost frame in a real object: a walk that left the rails
        # ends in garbage addresses, which no mapping holds.
        mapped = next((loc for loc in user if loc.mapping_id), None)
        module = os.path.basename(mappings[mapped.mapping_id].path) if mapped else "[unmapped]"
        where[module] = where.get(module, 0) + count
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


def subtitle_for(profile: RawProfile, losses: Losses, notes: tuple[str, ...]) -> str:
    parts = [losses.describe(), *notes]
    command = profile.info.describe_command_end()
    if command is not None:
        parts.append(f"command {command}")
    return "; ".join(parts)
