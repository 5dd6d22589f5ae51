"""Workloads of the dwarf-mode tests, built without frame pointers.

Unlike sysutil.WORKLOADS (built with -fno-omit-frame-pointer, so that a
frame-pointer walk finds every caller), these are built the way most shipped
software is: without frame pointers, so only CFI (.eh_frame) finds the
callers. One is built with frame pointers on purpose: its hot leaf has no
frame anyway, which is what the frame-pointer mode's leaf fix is for. And the
machine's own python3 (pyenv's 3.11 here: libpython without frame pointers)
runs a pure-Python loop.

Each workload takes its running time in seconds as its first argument and
stops by itself (SIGALRM or a sleeping thread), so that the profiler and perf
see the same run when each starts it as a command.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest

from conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(HERE, "workloads_dwarf")

# name: (source, compiler, flags). No -g: the unwinder has .eh_frame only,
# as with a distribution's stripped binaries (the names come from .symtab).
BUILDS = {
    "omit_chain": ("omit_chain.c", "gcc", ["-O2", "-fomit-frame-pointer"]),
    "threads_exc": ("threads_exc.cpp", "g++", ["-O2", "-fomit-frame-pointer", "-pthread"]),
    "sig_handler": ("sig_handler.c", "gcc", ["-O2", "-fomit-frame-pointer"]),
    # Frame pointers, but GCC gives the small hot leaf no frame.
    "frameless_leaf": ("frameless_leaf.c", "gcc", ["-O2", "-fno-omit-frame-pointer"]),
}
# A release build: opt-level 3, no frame pointers (said explicitly: it is the
# x86_64 Linux default), line tables only.
RUSTFLAGS = ["-C", "opt-level=3", "-C", "debuginfo=1", "-C", "force-frame-pointers=no"]


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    argv: tuple[str, ...]  # the command without its SECONDS argument
    comm: str              # the process name the samples carry

    def command(self, seconds: float) -> list[str]:
        return [*self.argv, str(seconds)]


def machine_python() -> str | None:
    """The interpreter `python3` on PATH runs (through pyenv's shims, if
    any), never the test environment's own (.venv): the machine's python is
    the one built without frame pointers that users profile."""
    venv_dirs = {os.path.realpath(os.path.join(p, "bin"))
                 for p in (sys.prefix, os.environ.get("VIRTUAL_ENV")) if p}
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and os.path.realpath(d) not in venv_dirs)
    found = shutil.which("python3", path=path)
    if found is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = path
    done = subprocess.run([found, "-c", "import sys; print(sys.executable)"],
                          capture_output=True, text=True, env=env, timeout=60)
    exe = done.stdout.strip()
    if done.returncode != 0 or not exe or not os.path.isabs(exe):
        return None
    return exe


def _build(out: str, name: str) -> str:
    source, compiler, flags = BUILDS[name]
    require(shutil.which(compiler) is not None, f"needs {compiler}")
    exe = os.path.join(out, name)
    subprocess.run([compiler, *flags, "-o", exe, os.path.join(SOURCES, source)], check=True)
    return exe


@pytest.fixture(scope="session")
def dwarf_workloads(tmp_path_factory) -> dict[str, Workload]:
    """Everything that can be built here; a test asks `need(...)` for its own."""
    out = str(tmp_path_factory.mktemp("workloads_dwarf"))
    built: dict[str, Workload] = {}
    for name, (_, compiler, _) in BUILDS.items():
        if shutil.which(compiler) is not None:
            built[name] = Workload(name, (_build(out, name),), name)
    rustc = shutil.which("rustc")
    if rustc is not None:
        exe = os.path.join(out, "rust_chain")
        subprocess.run([rustc, *RUSTFLAGS, "-o", exe,
                        os.path.join(SOURCES, "rust_chain.rs")], check=True)
        built["rust_chain"] = Workload("rust_chain", (exe,), "rust_chain")
    python = machine_python()
    if python is not None:
        built["py_loop"] = Workload("py_loop", (python, os.path.join(SOURCES, "py_loop.py")),
                                    os.path.basename(python)[:15])
    return built


def need(workloads: dict[str, Workload], name: str) -> Workload:
    """The workload, or a skip (a failure under CI) saying what is missing."""
    why = {"rust_chain": "needs rustc (a Rust toolchain)",
           "py_loop": "needs a python3 on PATH other than the test environment's",
           "threads_exc": "needs g++"}.get(name, "needs gcc")
    require(name in workloads, why)
    return workloads[name]
