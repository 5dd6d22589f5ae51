"""Privileges, and what compiling with BCC needs around it: the one import
of bcc, clang's messages captured from fd 2, and clang's freed memory given
back. (program.py compiles with these, or loads a kept image without them.)"""
from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import tempfile
from typing import Iterator

from profiler.errors import BccMissingError, NotPermittedError

CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21


def check_privileges() -> None:
    if os.geteuid() == 0:
        return
    try:
        status = pathlib.Path("/proc/self/status").read_text()
        cap = int(next(l.split()[1] for l in status.splitlines() if l.startswith("CapEff")), 16)
    except (OSError, StopIteration, ValueError):
        cap = 0
    if not (cap >> CAP_BPF & 1 and cap >> CAP_PERFMON & 1 and cap >> CAP_SYS_ADMIN & 1):
        raise NotPermittedError(
            "recording needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN to load BPF and "
            "read other processes' memory maps)",
            "run it as root, e.g. 'sudo .venv/bin/profiler record ...'")


def import_bcc():
    try:
        import bcc  # noqa: the one import of bcc in the project
    except ImportError as err:
        raise BccMissingError(
            f"the BCC Python module cannot be imported ({err})",
            "run 'make setup' (installs Debian's python3-bpfcc) and use the project's "
            ".venv/bin/python, which sees the system site-packages") from None
    return bcc


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collect what libbcc/clang write to fd 2 (they bypass sys.stderr)."""
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def release_freed_memory() -> None:
    """Give clang's freed working memory back to the system after compiling.

    LLVM frees most of what it used, but glibc keeps it in its free lists:
    about 60 MB that would otherwise stay resident for the whole run and add
    to the memory symbolizing and rendering use afterwards.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc: nothing to trim
        pass


def compiler_message(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip() and "modprobe" not in l]
    errors = [l for l in lines if "error" in l.lower()]
    return "\n".join((errors or lines)[:12]) or "(the compiler printed nothing)"
