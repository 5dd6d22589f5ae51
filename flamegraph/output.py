"""Writing results: whole files atomically, standard output completely."""
from __future__ import annotations

import os
import pathlib
import sys
import tempfile
from typing import Callable

from flamegraph.errors import FlameGraphError, InputError


def write_atomically(path: str, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees half an SVG."""
    target = pathlib.Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as e:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:  # interrupted: no temporary file left behind
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_all(stream, data: bytes) -> None:
    """Write every byte, or raise.

    Under PYTHONUNBUFFERED (python -u) stdout.buffer is a raw FileIO whose
    write() may stop short, e.g. when the reader goes away; looping turns that
    into the BrokenPipeError it really is instead of a truncated "success".
    """
    view = memoryview(data)
    while view:
        view = view[stream.write(view) or 0:]
    stream.flush()


def quiet_broken_pipe(stream_fd: int) -> None:
    """The reader went away (`| head`): silence the flush at exit too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream_fd)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a CLI's work; every known failure is one line on stderr, no traceback."""
    try:
        return body()
    except FlameGraphError as e:
        print(f"{prog}: {e.user_message()}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        quiet_broken_pipe(sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        print(f"{prog}: out of memory", file=sys.stderr)
        return 1
