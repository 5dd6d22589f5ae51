"""Start `-- COMMAND` stopped before its first instruction.

The child is forked and waits on a pipe; the profiler adds its PID to the BPF
filter, attaches, then lets it exec. So the profile covers the command from
its first instruction to its exit.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import time

from profiler.errors import TargetError


def resolve_command(argv: tuple[str, ...]) -> str:
    """The executable for argv[0], or TargetError (command not found)."""
    name = argv[0]
    path = name if "/" in name else shutil.which(name)
    if not path or not os.path.isfile(path):
        raise TargetError(f"command not found: {name}",
                          "check the spelling, give a path, or fix PATH")
    if not os.access(path, os.X_OK):
        raise TargetError(f"command is not executable: {path}", f"chmod +x {path}")
    return path


def _set_comm(name: str) -> None:
    """Name the waiting child after the command (prctl PR_SET_NAME).

    It is sampled from the moment it is released, and execve's own kernel
    work (tearing down our copy of Python's memory) belongs to the command,
    not to a process called "python" or "profiler".
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)
    except (AttributeError, OSError):
        pass


def _die_with(parent: int) -> None:
    """SIGKILL when the profiler dies (prctl PR_SET_PDEATHSIG; kept across
    exec), so a killed profiler leaves no command running. If the parent
    died before the request took effect, it never will: exit now."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(126)


class Launcher:
    def __init__(self, argv: tuple[str, ...]) -> None:
        self.argv = argv
        self.path = resolve_command(argv)
        go_r, self._go_w = os.pipe()
        self._err_r, err_w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # child: wait for the word, then become the command
            try:
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ):
                    signal.signal(sig, signal.SIG_DFL)
                _die_with(parent)
                os.close(self._go_w)
                os.close(self._err_r)
                _set_comm(os.path.basename(self.path))
                if os.read(go_r, 1) != b"g":
                    os._exit(126)
                os.close(go_r)
                os.execv(self.path, list(argv))
            except OSError as err:
                with contextlib.suppress(OSError):
                    os.write(err_w, f"{err.errno}".encode())
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self.status: int | None = None

    def release(self) -> None:
        """Let the command run; TargetError if exec failed."""
        os.write(self._go_w, b"g")
        os.close(self._go_w)
        self._go_w = -1
        report = os.read(self._err_r, 64)
        os.close(self._err_r)
        if report:
            self.wait()
            errno_ = int(report)
            raise TargetError(f"cannot run {self.path}: {os.strerror(errno_)}",
                              "check that it is an executable for this machine")

    def poll(self) -> int | None:
        """The exit status once the command has ended, else None."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self) -> int:
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def stop(self, grace: float = 2.0) -> bool:
        """End the command if it still runs (SIGTERM, then SIGKILL); whether
        it had to be signalled."""
        if self._go_w >= 0:  # never released: it is waiting on the pipe
            os.close(self._go_w)
            self._go_w = -1
        if self.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.poll() is not None:
                return True
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.wait()
        return True
