"""Every write error is one message and an exit status, never a traceback:
stdout on a full device (/dev/full: ENOSPC), a file on a full file system,
in `flamegraph`, `flamegraph-diff` and `profiler report` (`profiler record`
is in tests/system/test_faults.py: it needs root)."""
import gzip
import os
import subprocess
import sys

import pytest

from conftest import require

FOLDED = "a;b 3\na;c 1\n"


def _profile_json() -> str:
    from profiler.model.maps import MapEntry
    from profiler.model.raw import CountRecord, MapsSnapshot, ProcessInfo, RawProfile, RecordingInfo
    info = RecordingInfo(target="PID 5", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=2.0, cpus=(0,), sides="both",
                         per_thread=False, started=1.5)
    entry = MapEntry(start=0x1000, end=0x2000, perms="r-xp", offset=0, dev="fd:01", inode=7,
                     path="/bin/x")
    return RawProfile(
        info=info, counts=(CountRecord(pid=5, tid=0, comm="x", user_stack=11, kernel_stack=0,
                                       count=4),),
        stacks={11: (0x1010, 0x1020)},
        processes={5: ProcessInfo(pid=5, snapshots=(MapsSnapshot(time=0.5, entries=(entry,)),))},
        stats={"samples": 4}).to_json()


def _run_to_full(module: str, args, stdin: bytes = b"", cwd=None):
    require(os.path.exists("/dev/full"), "needs /dev/full")
    with open("/dev/full", "wb") as full:
        return subprocess.run([sys.executable, "-m", module, *args], input=stdin, stdout=full,
                              stderr=subprocess.PIPE, timeout=120, cwd=cwd)


def _one_message(stderr: bytes, prefix: str) -> str:
    text = stderr.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    assert text.count(f"{prefix}") >= 1 and "No space left on device" in text, text
    return text


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.folded").write_text(FOLDED)
    (tmp_path / "raw.json").write_text(_profile_json())
    return tmp_path


def test_flamegraph_to_a_full_stdout(files):
    for args, stdin in (([str(files / "a.folded")], b""), ([], FOLDED.encode())):
        p = _run_to_full("flamegraph.cli", args, stdin)
        assert p.returncode == 2
        text = _one_message(p.stderr, "flamegraph: cannot write standard output")
        assert text.count("flamegraph:") == 1


def test_flamegraph_diff_to_a_full_stdout(files):
    p = _run_to_full("flamegraph.diff_cli", [str(files / "a.folded"), str(files / "a.folded")])
    assert p.returncode == 2
    text = _one_message(p.stderr, "flamegraph-diff: cannot write standard output")
    assert text.count("flamegraph-diff:") == 1


@pytest.mark.parametrize("fmt", ["-", "folded", "svg", "raw"])
def test_profiler_report_to_a_full_stdout(files, fmt):
    args = ["report", str(files / "raw.json"), "-o", "-"]
    if fmt != "-":
        args += ["--format", fmt]
    p = _run_to_full("profiler", args)
    assert p.returncode == 1
    text = _one_message(p.stderr, "profiler: error: cannot write standard output")
    assert text.count("profiler: error:") == 1 and "profiler: remedy:" in text


def test_list_events_and_print_program_to_a_full_stdout():
    p = _run_to_full("profiler", ["record", "--print-program"])
    assert p.returncode == 1
    _one_message(p.stderr, "profiler: error: cannot write standard output")


def _small_tmpfs_script(body: str) -> list[str]:
    require(os.geteuid() == 0, "needs root (a small tmpfs in a mount namespace)")
    require(subprocess.run(["which", "unshare"], capture_output=True).returncode == 0,
            "needs unshare (util-linux)")
    return ["unshare", "--mount", "sh", "-c",
            "mount -t tmpfs -o size=8k none /mnt && " + body]


def test_a_full_file_system_is_one_message(files):
    """ENOSPC on a file: an 8 KB tmpfs cannot hold the SVG."""
    big = "".join(f"root;frame_{i};leaf_{i} {i + 1}\n" for i in range(2000))
    (files / "big.folded").write_text(big)
    py = sys.executable
    for module, args in (("flamegraph.cli", f"{files}/big.folded -o /mnt/out.svg"),
                         ("profiler", f"report {files}/raw.json -o /mnt/out.svg")):
        cmd = _small_tmpfs_script(f"exec {py} -m {module} {args}")
        p = subprocess.run(cmd, capture_output=True, timeout=120, cwd=str(files),
                           env=dict(os.environ, PYTHONPATH=os.getcwd()))
        text = p.stderr.decode()
        if "mount:" in text:
            require(False, f"cannot mount a tmpfs here: {text.strip()}")
        assert p.returncode in (1, 2) and "Traceback" not in text, text
        assert "cannot write /mnt/out.svg" in text and "No space left on device" in text, text


def test_a_compressed_or_binary_file_given_to_report_is_one_message(files):
    from profiler.cli import main as cli
    (files / "cpu.pb.gz").write_bytes(gzip.compress(b"\x00\x01binary profile"))
    (files / "bin.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    for name, words in (("cpu.pb.gz", "not a pprof profile"), ("bin.json", "binary data")):
        p = subprocess.run([sys.executable, "-m", "profiler", "report", str(files / name),
                            "-o", str(files / "x.svg")], capture_output=True, timeout=60)
        text = p.stderr.decode()
        assert p.returncode == 2 and "Traceback" not in text, text  # bad input: 2
        assert text.count("profiler: error:") == 1 and words in text, text
    assert cli.main(["report", str(files), "-o", str(files / "x.svg")]) == 2  # a directory
