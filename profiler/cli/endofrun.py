"""What a run or a report tells the user at its end, on stderr: warnings,
losses, notes, how the command ended, and where the output went."""
from __future__ import annotations

import sys

from profiler.cli import PROG


def warn(warnings) -> None:
    """Whole-run problems, each once, even under -q: they explain the output."""
    for warning in dict.fromkeys(warnings):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def summary(raw, out, written) -> None:
    """The end of a run (or report): losses and notes, as the profile's
    metadata has them (from the raw profile when it was written raw)."""
    where = "stdout" if out.path == "-" else out.path
    if written is not None:
        for line in written.meta.summary:
            print(f"{PROG}: {line}", file=sys.stderr)
        if written.meta.empty and raw is not None:
            info = raw.info
            hint = "" if info.stopped_by.startswith("signal") else \
                " (an idle target? try a higher -F or a longer -d)"
            print(f"{PROG}: no samples were recorded in {info.duration:.1f} s{hint}",
                  file=sys.stderr)
        if written.meta.unresolved_frames:
            print(f"{PROG}: {written.meta.unresolved_frames} distinct frames could not be "
                  "named (shown as module+0xOFFSET)", file=sys.stderr)
    else:
        from profiler.symbolize.summary import losses_of, notes_of
        from profiler.unwind.stacks import unwind
        unwound = unwind(raw)[1]
        print(f"{PROG}: {losses_of(raw, unwound).describe()}", file=sys.stderr)
        for note in notes_of(raw, unwound):
            print(f"{PROG}: {note}", file=sys.stderr)
    if raw is None:
        print(f"{PROG}: wrote {where}", file=sys.stderr)
        return
    profile = raw
    info = raw.info
    command = info.describe_command_end()
    if command is not None:
        print(f"{PROG}: command {command}", file=sys.stderr)
    exited = [p for p in profile.processes.values() if p.exited and not p.kernel_thread]
    if info.stopped_by == "targets exited":
        print(f"{PROG}: every target exited; the run ended after {info.duration:.1f} s "
              "and keeps their samples", file=sys.stderr)
    elif exited and info.stopped_by != "command exited":
        print(f"{PROG}: {len(exited)} profiled process(es) exited during the run; "
              "their samples are kept", file=sys.stderr)
    print(f"{PROG}: wrote {where}", file=sys.stderr)
