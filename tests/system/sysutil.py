"""Helpers of the system tests of `profiler record` (real BPF, run as root).

Workloads are C/C++ programs in workloads/, compiled once per session into a
temporary directory. Each test runs the profiler as a user would, through
`python -m profiler`, and checks its output. (Not a conftest.py: tests/ has
one already and both would be imported as `conftest`.)
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
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
    from profiler.record.kheaders import plan_headers
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


def _our_maps() -> dict[int, str]:
    """Id -> name of the BPF maps now loaded that bear a name of ours."""
    import re
    source = open(os.path.join(REPO, "profiler", "record", "bpf", "profile.bpf.c")).read()
    names = {m.group(2) or m.group(1) for m in re.finditer(
        r"^BPF_\w+\((?:\"\w+\",\s*[^,]+,\s*[^,]+,\s*(\w+)|(\w+))", source, re.M)}
    names = {n[:15] for n in names if n}
    done = subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True, text=True)
    return {m["id"]: m.get("name", "") for m in json.loads(done.stdout or "[]")
            if m.get("name", "") in names} if done.returncode == 0 else {}


def _command_cgroups() -> set[str]:
    from profiler.record import cgroup
    found = set()
    for parent in cgroup._parents():
        with contextlib.suppress(OSError):
            found |= {str(parent / e.name) for e in os.scandir(parent)
                      if e.name.startswith(cgroup.PREFIX)}
    return found


def _our_children() -> set[int]:
    """Processes whose parent is this one: with PR_SET_CHILD_SUBREAPER, also
    the orphans of the processes the test started (a command a profiler left)."""
    kids = set()
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            kids |= {int(p) for p in open(f"/proc/self/task/{task}/children").read().split()}
    return kids


def _held_by_others(ids, key: str) -> set[int]:
    """Of these BPF object ids (key: "prog_id" or "map_id"), those an fd of a
    process outside this one's descendants holds: another run's, not ours."""
    def ours(pid: int) -> bool:
        for _ in range(64):
            if pid == os.getpid():
                return True
            try:
                pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                return False
            if pid <= 1:
                return False
        return False
    held = set()
    for fdinfo in glob.glob("/proc/[0-9]*/fdinfo/*"):
        with contextlib.suppress(OSError, ValueError):
            for line in open(fdinfo):
                if line.startswith(key + ":") and int(line.split()[1]) in ids:
                    if not ours(int(fdinfo.split("/")[2])):
                        held.add(int(line.split()[1]))
    return held


@pytest.fixture
def no_leftovers():
    """Fails the test if it leaves behind BPF programs or maps of ours,
    profiler-* cgroups, or processes (a command still running, an
    unreaped one). Only what the test created counts: programs, maps and
    cgroups present before it, or of a profiler still running (another run
    going on meanwhile, say a benchmark), and processes that are not
    descendants of this one do not."""
    require(shutil.which("bpftool") is not None, "needs bpftool")
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come to us
    from profiler.record.cgroup import owner_alive
    before = set(_our_programs())
    maps_before = set(_our_maps())
    cgroups_before = _command_cgroups()
    children_before = _our_children()
    yield
    deadline = time.monotonic() + 5
    while True:
        left = {i: n for i, n in _our_programs().items() if i not in before}
        left_maps = {i: n for i, n in _our_maps().items() if i not in maps_before}
        if not (left or left_maps) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    cgroups = {c for c in _command_cgroups() - cgroups_before
               if not owner_alive(os.path.basename(c))}
    orphans = {}
    for pid in _our_children() - children_before:
        with contextlib.suppress(OSError):
            orphans[pid] = open(f"/proc/{pid}/stat").read().split(") ")[0] + ")"
        with contextlib.suppress(OSError):  # running or a zombie: reap it, but count it
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    for i in _held_by_others(set(left), "prog_id"):
        del left[i]
    for i in _held_by_others(set(left_maps), "map_id"):
        del left_maps[i]
    assert not left, f"BPF programs left loaded: {left}"
    assert not left_maps, f"BPF maps left: {left_maps}"
    assert not cgroups, f"cgroups left: {cgroups}"
    assert not orphans, f"processes left running or unreaped: {orphans}"
