"""Golden outputs of `profiler report` for one raw profile: every exporter
gives these exact bytes.

The raw profile is made here, around a small program built here (its
functions' addresses from binutils' nm), so it resolves the same way on any
machine with the same compiler: named frames, a frame in no function, an
unmapped address, a JIT frame named by a perf map, kernel addresses that
name nothing, per-thread counts. The folded and SVG goldens were written by
the pipeline before the profile model existed (strings all the way), so
they prove the model changed no byte; pprof (its protobuf, the build
directory made constant), speedscope and the raw profile (written back as
`report` writes it, the build made constant) have goldens of their own. After an intended change, rewrite
them with `.venv/bin/python -m pytest tests/golden --bless` and review the
diff.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import require

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
SOURCE = r"""
volatile unsigned long sink;
__attribute__((noinline)) void leaf(void) { for (int i = 0; i < 1000; i++) sink += i; }
__attribute__((noinline)) void middle(void) { leaf(); sink++; }
__attribute__((noinline)) void outer(void) { middle(); sink++; }
int main(void) { outer(); return 0; }
"""
OUTPUTS = {"folded": "profile.folded", "svg": "profile.svg", "pprof": "profile.pb",
           "speedscope": "profile.speedscope.json", "raw": "profile.raw.json"}


def _build(tmp: pathlib.Path) -> tuple[pathlib.Path, dict[str, int]]:
    for tool in ("gcc", "nm"):
        require(shutil.which(tool) is not None, f"needs {tool}")
    src = tmp / "golden.c"
    src.write_text(SOURCE)
    exe = tmp / "golden_app"
    subprocess.run(["gcc", "-O2", "-fno-pie", "-no-pie", "-o", str(exe), str(src)], check=True)
    symbols = {}
    for line in subprocess.run(["nm", str(exe)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tT":
            symbols[parts[2]] = int(parts[0], 16)
    return exe, symbols


def raw_profile(tmp: pathlib.Path) -> pathlib.Path:
    exe, sym = _build(tmp)
    st = os.stat(exe)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    # A non-PIE executable: its text is mapped at its own addresses.
    text = [0x400000, 0x500000, "r-xp", 0, dev, st.st_ino, str(exe)]
    jit = [0x7f0000000000, 0x7f0000010000, "rwxp", 0, "00:00", 0, ""]
    ret = lambda name, k=5: sym[name] + k  # a return address inside `name`
    start = ret("_start")  # the entry point: the stacks are whole
    stacks = {  # leaf first
        "1": [sym["leaf"] + 2, ret("middle"), ret("outer"), ret("main"), start],
        "2": [sym["middle"] + 1, ret("outer"), ret("main"), start],
        "3": [0x7f0000000100, ret("main"), start],  # JIT code called from main
        "4": [0x1234, ret("main"), start],  # an unmapped address
        "5": [0x400001, ret("main"), start],  # inside the file, in no function
        "6": [0x10, 0x20],  # kernel addresses that name nothing
    }
    doc = {
        "format": "profiler-raw", "version": 1,
        "info": {"target": "golden_app", "event": "cpu-clock", "event_type": 1,
                 "event_config": 0, "frequency": 99, "period": None, "duration": 2.0,
                 "cpus": [0, 1], "sides": "both", "per_thread": True, "started": 1.5e9,
                 "command_status": 0, "stopped_by": "command exited"},
        "counts": [[100, 101, "golden_app", 1, 0, 40], [100, 102, "golden_app", 1, 6, 7],
                   [100, 101, "golden_app", 2, 0, 9], [100, 101, "golden_app", 3, 0, 5],
                   [100, 101, "golden_app", 4, 0, 2], [100, 101, "golden_app", 5, 0, 1],
                   [100, 101, "golden app;2", 0, 6, 3]],
        "stacks": stacks,
        "processes": {"100": {"kernel_thread": False, "exited": True, "foreign_mounts": False,
                              "vdso": "", "snapshots": [{"time": 0.1,
                                                         "entries": [text, jit]}]}},
        "stats": {"samples": 70, "lost_stack_store_full": 3, "lost_counts_map_full": 0,
                  "kernel_walk_errors": 0},
        "jit": {"100": [[0x7f0000000000, 0x200, "LazyCompile:*hotLoop app.js:3"]]},
        "vdso_images": {},
    }
    path = tmp / "golden.json"
    path.write_text(json.dumps(doc))
    return path


def report(raw: pathlib.Path, out: pathlib.Path, *args: str) -> bytes:
    env = dict(os.environ, PYTHONPATH=str(REPO), PROFILER_NO_SYMBOL_CACHE="1")
    done = subprocess.run([sys.executable, "-m", "profiler", "report", str(raw), "-o", str(out),
                           "--per-thread", *args], capture_output=True, text=True, env=env,
                          cwd=str(REPO), timeout=120)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def check(name: str, data: bytes, bless: bool) -> None:
    golden = HERE / "profiles" / name
    if bless:  # never a silent pass: a rewritten file is reported, to be reviewed
        if golden.exists() and golden.read_bytes() == data:
            return
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(data)
        pytest.fail(f"--bless rewrote {golden.name}: review the diff (git diff {golden}) and "
                    "run again without --bless", pytrace=False)
    assert golden.exists(), f"no golden file {golden.name}; run pytest tests/golden --bless"
    assert data == golden.read_bytes(), f"{golden.name} differs; if intended, re-bless"


def _pprof_without_the_build_dir(data: bytes, build_dir: str) -> bytes:
    """The protobuf inside, with the test's temporary directory (in the
    mapping's file name) made constant."""
    from profiler.export.pprof import decompress
    from profiler.export.pprof_proto import profile_pb2
    pb = profile_pb2.Profile.FromString(decompress(data))
    strings = [t.replace(build_dir, "/BUILD") for t in pb.string_table]
    del pb.string_table[:]
    pb.string_table.extend(strings)
    return pb.SerializeToString(deterministic=True)


@pytest.mark.parametrize("kind", sorted(OUTPUTS))
def test_report_output_is_golden(kind, tmp_path, bless):
    raw = raw_profile(tmp_path)
    out = tmp_path / ("profile.pb.gz" if kind == "pprof" else OUTPUTS[kind])
    data = report(raw, out)
    if kind == "pprof":
        assert data[:2] == b"\x1f\x8b" and data[4:8] == bytes(4)  # gzip, mtime 0
        data = _pprof_without_the_build_dir(data, str(tmp_path))
    if kind == "raw":
        data = _raw_without_the_build(data, str(tmp_path))
    check(OUTPUTS[kind], data, bless)


def _raw_without_the_build(data: bytes, build_dir: str) -> bytes:
    """The raw profile with what this build of the program changes (its
    directory, device and inode) made constant."""
    doc = json.loads(data)
    for proc in doc["processes"].values():
        for snap in proc["snapshots"]:
            for entry in snap["entries"]:
                if entry[6].startswith(build_dir):
                    entry[4], entry[5] = "00:00", 1
                    entry[6] = entry[6].replace(build_dir, "/BUILD")
    return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()
