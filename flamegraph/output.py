"""Writing results: whole files atomically, standard output completely."""
from __future__ import annotations

import os
import pathlib
import stat
import sys
import tempfile
from typing import Callable

from flamegraph.errors import FlameGraphError, WriteError


def write_atomically(path: str, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees half an SVG.

    A device, FIFO or socket (`-o /dev/null`, a named pipe) is written in
    place: renaming a file over it would replace the device node itself (as
    root, /dev/null would become a regular file). A symbolic link is
    followed, so the link stays and its target gets the output."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        try:
            with open(path, "wb") as handle:
                handle.write(data)
        except OSError as e:
            raise WriteError(f"cannot write {path}: {e.strerror}") from None
        return
    target = pathlib.Path(path)
    if target.is_symlink():
        try:
            target = pathlib.Path(os.path.realpath(path))
        except OSError:  # the current directory is gone: write the path as given
            pass
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as e:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {e.strerror}") from None
    except BaseException:  # interrupted: no temporary file left behind
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_all(stream, data: bytes, what: str = "standard output") -> None:
    """Write every byte, or raise: BrokenPipeError when the reader went away
    (`| head`), WriteError for any other failure (ENOSPC, EIO, ...).

    Under PYTHONUNBUFFERED (python -u) stdout.buffer is a raw FileIO whose
    write() may stop short, e.g. when the reader goes away; looping turns that
    into the BrokenPipeError it really is instead of a truncated "success".
    """
    view = memoryview(data)
    try:
        while view:
            view = view[stream.write(view) or 0:]
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        discard_output(stream)
        raise WriteError(f"cannot write {what}: {e.strerror or e}",
                         "make room on the device, or write to a file with -o") from None


def discard_output(stream) -> None:
    """After a failed write: what is still buffered goes nowhere, so the
    interpreter's flush at exit does not fail (and print) a second time."""
    try:
        quiet_broken_pipe(stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass


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
