"""The renderer's user-facing errors: a message and a remedy, no traceback.

Caught only in each CLI's `main(argv) -> int`.
"""
from __future__ import annotations


class FlameGraphError(Exception):
    """A known failure; `str()` is the message, `remedy` what to do about it."""

    exit_code = 2

    def __init__(self, message: str, remedy: str = ""):
        super().__init__(message)
        self.remedy = remedy

    def user_message(self) -> str:
        text = str(self)
        return f"{text}\n  hint: {self.remedy}" if self.remedy else text


class InputError(FlameGraphError):
    """A file cannot be read, or its contents cannot be used."""


class OptionError(FlameGraphError):
    """An option value is out of range or malformed."""


class WriteError(InputError):
    """The output cannot be written: a full disk (ENOSPC), an I/O error (EIO),
    a missing or read-only directory."""
