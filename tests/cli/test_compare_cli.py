"""`profiler compare` as a CI job runs it: files in, reports out, exit status."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "profiler.cli.main", "compare", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


def write(path, counts):
    path.write_text("".join(f"{stack} {n}\n" for stack, n in counts.items()))
    return str(path)


@pytest.fixture
def pair(tmp_path):
    base = write(tmp_path / "base.folded", {"app;main;hot": 1000, "app;main;rest": 9000})
    head = write(tmp_path / "head.folded", {"app;main;hot": 3000, "app;main;rest": 7000})
    return tmp_path, base, head


def test_regression_beyond_the_gate_exits_1_and_names_it(pair):
    tmp, base, head = pair
    p = run(base, head, "--fail-on", "5", "-o", str(tmp / "d.svg"), "--json", str(tmp / "r.json"),
            "--markdown", str(tmp / "s.md"))
    assert p.returncode == 1, p.stderr
    assert "FAIL" in p.stderr and "hot (+20.00 pp" in p.stderr
    report = json.loads((tmp / "r.json").read_text())
    assert report["verdict"] == "fail" and report["failed"] == ["hot"]
    assert "| hot | 10.00% | 30.00% | +20.00 pp |" in (tmp / "s.md").read_text()
    svg = ET.parse(tmp / "d.svg").getroot()
    assert svg.find("{http://www.w3.org/2000/svg}text[@id='title']").text == \
        "base.folded \u2192 head.folded"


def test_same_profile_twice_exits_0_with_nothing_reported(pair):
    tmp, base, _ = pair
    p = run(base, base, "--fail-on", "0", "--markdown", str(tmp / "s.md"))
    assert p.returncode == 0 and "no significant change" in p.stderr
    assert (tmp / "s.md").read_text().count("None significant.") == 2


def test_twice_the_samples_same_shape_exits_0(tmp_path):
    base = write(tmp_path / "a", {"app;x": 100, "app;y": 300})
    head = write(tmp_path / "b", {"app;x": 200, "app;y": 600})
    assert run(base, head, "--fail-on", "1").returncode == 0


def test_without_a_gate_a_regression_exits_0(pair):
    _, base, head = pair
    assert run(base, head).returncode == 0


@pytest.mark.parametrize("make_args,message", [
    (lambda t, b, h: [str(t / "missing.folded"), h], "cannot read"),
    (lambda t, b, h: [str(t), h], "is a directory"),
    (lambda t, b, h: [b, str(t / "garbage")], "no valid folded line"),
    (lambda t, b, h: [b, h, "--fail-on", "-3"], "--fail-on"),
    (lambda t, b, h: [b, h, "--metric", "wall"], "invalid choice"),
])
def test_bad_input_exits_2_without_a_traceback(pair, make_args, message):
    tmp, base, head = pair
    (tmp / "garbage").write_bytes(b"\x00\xff garbage\nno numbers\n")
    p = run(*make_args(tmp, base, head))
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr


def test_strip_hex_merges_addresses(tmp_path):
    base = write(tmp_path / "a", {"app;0x1234": 500, "app;f": 500})
    head = write(tmp_path / "b", {"app;0xbeef": 500, "app;f": 500})
    p = run(base, head, "--strip-hex", "--json", str(tmp_path / "r.json"), "--fail-on", "0")
    assert p.returncode == 0
    names = {f["name"] for f in json.loads((tmp_path / "r.json").read_text())["functions"]}
    assert "0x..." in names


def raw_profile_json(user_count: int, other_count: int) -> str:
    """A raw profile as `profiler record -o x.json` writes it (no BPF needed)."""
    from profiler.model.maps import MapEntry
    from profiler.model.raw import CountRecord, MapsSnapshot, ProcessInfo, RawProfile, RecordingInfo
    info = RecordingInfo(target="PID 5", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=2.0, cpus=(0,), sides="both",
                         per_thread=False, started=1.5, command_status=None,
                         stopped_by="duration")
    entry = MapEntry(start=0x1000, end=0x3000, perms="r-xp", offset=0, dev="fd:01", inode=7,
                     path="/nonexistent/app")
    return RawProfile(
        info=info,
        counts=(CountRecord(pid=5, tid=0, comm="app", user_stack=11, kernel_stack=0,
                            count=user_count),
                CountRecord(pid=5, tid=0, comm="app", user_stack=12, kernel_stack=0,
                            count=other_count)),
        stacks={11: (0x1010, 0x1020), 12: (0x2010, 0x1020)},
        processes={5: ProcessInfo(pid=5, snapshots=(MapsSnapshot(time=0.5, entries=(entry,)),))},
        stats={"samples": user_count + other_count},
    ).to_json()


def test_raw_profiles_are_compared_like_folded_ones(tmp_path):
    (tmp_path / "base.json").write_text(raw_profile_json(1000, 9000))
    (tmp_path / "head.json").write_text(raw_profile_json(3000, 7000))
    p = run(str(tmp_path / "base.json"), str(tmp_path / "head.json"), "--fail-on", "5",
            "--json", str(tmp_path / "r.json"))
    assert p.returncode == 1, p.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["baseline"]["total_samples"] == 10000
    # Unnamed frames read module+0xFILE_OFFSET; the leaf (file offset 0x10) grew 10% -> 30%.
    assert report["failed"] == ["app+0x10"]
