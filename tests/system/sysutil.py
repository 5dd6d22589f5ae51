"""Helpers of the system tests of `profiler record` (real BPF, run as root).

Workloads are C/C++ programs in workloads/, compiled once per session into a
temporary directory. Each test runs the profiler as a user would, through
`python -m profiler`, and checks its output. (Not a conftest.py: tests/ has
one already and both would be imported as `conftest`.)
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CFLAGS = ["-O2", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls"]
WORKLOADS = {  # name: (source, compiler, extra flags)
    "fp_chain": ("fp_chain.c", "gcc", []),
    "many_stacks": ("many_stacks.c", "gcc", ["-pthread"]),
    "exiter": ("exiter.c", "gcc", []),
    "threads": ("threads.cpp", "g++", ["-pthread"]),
    "pagefault": ("pagefault.c", "gcc", []),
    "vdso_loop": ("vdso_loop.c", "gcc", []),
}
PROGRAM_NAMES = ("prof_sample", "prof_exec")


def _bcc_importable() -> bool:
    return subprocess.run([sys.executable, "-c", "import bcc"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def bpf_ready() -> None:
    require(os.geteuid() == 0, "needs root (BPF)")
    require(_bcc_importable(), "needs BCC (python3-bpfcc) importable from this python")
    from profiler.errors import KernelHeadersError
    from profiler.kheaders import plan_headers
    try:
        plan_headers()
        ok = True
    except KernelHeadersError:
        ok = False
    require(ok, "needs kernel headers (make setup)")


_BUILT: dict[str, str] = {}


@pytest.fixture(scope="session")
def workloads(tmp_path_factory) -> dict[str, str]:
    if _BUILT:
        return _BUILT
    out = tmp_path_factory.mktemp("workloads")
    built = _BUILT
    for name, (source, compiler, extra) in WORKLOADS.items():
        require(shutil.which(compiler) is not None, f"needs {compiler}")
        exe = str(out / name)
        subprocess.run([compiler, *CFLAGS, *extra, "-o", exe,
                        os.path.join(HERE, "workloads", source)], check=True)
        built[name] = exe
    return built


@dataclasses.dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def profiler_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "profiler", *args]


def run_profiler(*args: str, timeout: float = 60, cwd: str | None = None) -> Run:
    done = subprocess.run(profiler_cmd(*args), capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO)
    return Run(done.returncode, done.stdout, done.stderr)


def parse_folded(text: str) -> list[tuple[list[str], int]]:
    rows = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        rows.append((stack.split(";"), int(count)))
    return rows


def _our_programs() -> dict[int, str]:
    """Id -> name of the BPF programs of ours now loaded (bpftool)."""
    done = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"bpftool failed: {done.stderr}")
    return {p["id"]: p.get("name", "") for p in json.loads(done.stdout or "[]")
            if p.get("name", "") in PROGRAM_NAMES}


def loaded_programs() -> list[str]:
    """Names of our BPF programs currently loaded (bpftool)."""
    return list(_our_programs().values())


def wait_for_programs(present: bool, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(loaded_programs()) == present:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def no_leftovers():
    """Fails the test if a program of ours that was not loaded before it is
    still loaded afterwards (programs of another run going on meanwhile, say
    a benchmark, do not count)."""
    require(shutil.which("bpftool") is not None, "needs bpftool")
    before = set(_our_programs())
    yield
    deadline = time.monotonic() + 5
    while True:
        left = {i: n for i, n in _our_programs().items() if i not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"BPF programs left loaded: {left}"
