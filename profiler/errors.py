"""One exception hierarchy for every known failure of the profiler.

Each error carries a one-line message and a remedy; `profiler.cli.main`
catches `ProfilerError` and prints both, so a user never sees a traceback for
a failure we know about.
"""
from __future__ import annotations


class ProfilerError(Exception):
    """A known failure: `message` says what went wrong, `remedy` what to do."""

    exit_status = 1

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return self.message if not self.remedy else f"{self.message}\n  remedy: {self.remedy}"


class UsageError(ProfilerError):
    """Bad command-line arguments."""

    exit_status = 2


class NotPermittedError(ProfilerError):
    """Not root / missing CAP_BPF and CAP_PERFMON."""


class BccMissingError(ProfilerError):
    """The bcc Python package cannot be imported."""


class KernelHeadersError(ProfilerError):
    """No usable kernel headers for BCC."""


class CompileError(ProfilerError):
    """BCC failed to compile or load the BPF program."""


class UnsupportedEventError(ProfilerError):
    """The kernel refuses to open the requested perf event."""


class TargetError(ProfilerError):
    """No such process / thread, or the command cannot be run."""


class OutputError(ProfilerError):
    """The output cannot be written, or a saved profile cannot be read."""


class BadProfileError(OutputError):
    """A profile given to `report` or `compare` cannot be read (bad input:
    exit 2, as for bad arguments)."""

    exit_status = 2


class Interrupted(ProfilerError):
    """Ctrl-C or SIGTERM before sampling started: nothing to write. Exits as
    an interrupted program does (128 + the signal's number)."""

    def __init__(self, signal_name: str) -> None:
        import signal
        super().__init__(f"interrupted by {signal_name} before recording started: "
                         "nothing was recorded",
                         "run it again; once recording has started, Ctrl-C or SIGTERM ends "
                         "the run and the output is written")
        self.exit_status = 128 + int(getattr(signal.Signals, signal_name, signal.SIGINT))
