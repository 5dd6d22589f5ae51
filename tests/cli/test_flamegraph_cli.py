"""`flamegraph` as users run it: exit codes, messages, files, flamegraph.pl spellings."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from flamegraph import cli
from flamegraph.options import Options

FOLDED = "a;b 3\na;c 1\n"


def run(args, stdin=b"", cwd=None):
    return subprocess.run([sys.executable, "-m", "flamegraph.cli", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=60)


def test_cli_defaults_equal_the_library_defaults():
    ns = cli.build_parser().parse_args([])
    assert cli.options_from_args(ns) == Options()


def test_stdin_to_stdout():
    p = run([], FOLDED.encode())
    assert p.returncode == 0, p.stderr
    assert ET.fromstring(p.stdout).tag.endswith("svg")
    assert p.stderr == b""


def test_files_are_concatenated_and_dash_is_stdin(tmp_path):
    (tmp_path / "one").write_text("a;b 3\n")
    (tmp_path / "two").write_text("a;c 1\n")
    both = run([str(tmp_path / "one"), str(tmp_path / "two")])
    mixed = run([str(tmp_path / "one"), "-"], b"a;c 1\n")
    assert both.returncode == mixed.returncode == 0
    assert both.stdout == mixed.stdout == run([], FOLDED.encode()).stdout


def test_output_file_is_written_whole(tmp_path):
    out = tmp_path / "g.svg"
    p = run(["-o", str(out)], FOLDED.encode())
    assert p.returncode == 0 and p.stdout == b""
    assert out.read_bytes() == run([], FOLDED.encode()).stdout
    assert [f.name for f in tmp_path.iterdir()] == ["g.svg"]  # no temporary left behind


def test_perl_style_single_dash_options():
    a = run(["-title", "T", "--width=600", "-countname", "bytes"], FOLDED.encode())
    b = run(["--title", "T", "--width", "600", "--countname=bytes"], FOLDED.encode())
    assert a.returncode == 0 and a.stdout == b.stdout
    assert b"bytes, 100%" in a.stdout


def test_bad_lines_are_reported_once_with_line_numbers():
    p = run([], b"a 1\nbad\nb 2\nworse\n")
    assert p.returncode == 0
    assert p.stderr.decode().strip() == \
        "flamegraph: ignored 2 line(s) with invalid format (line 2, 4)"


@pytest.mark.parametrize("args,stdin,message", [
    (["/nonexistent/file"], b"", "cannot read /nonexistent/file"),
    (["/"], b"", "is a directory"),
    ([], b"no counts here\n", "no stack counts found"),
    ([], os.urandom(4096).replace(b"\n", b"x"), "no stack counts found"),
    (["--minwidth", "wide"], FOLDED.encode(), "--minwidth"),
    (["--colors", "rainbow"], FOLDED.encode(), "unknown palette"),
    (["--bgcolors", "plaid"], FOLDED.encode(), "--bgcolors"),
    (["--width", "0"], FOLDED.encode(), "positive"),
    (["--encoding", "klingon"], FOLDED.encode(), "--encoding"),
    (["--nameattr", "/nonexistent"], FOLDED.encode(), "--nameattr"),
    (["--width", "x"], FOLDED.encode(), "invalid int value"),
    (["-o", "/nonexistent/dir/out.svg"], FOLDED.encode(), "cannot write"),
    ([], ("a " + "9" * 400 + "\n").encode(), "no stack counts found"),
    ([], ("a " + "9" * 308 + "\nb " + "9" * 308 + "\n").encode(), "add up to more"),
])
def test_known_failures_exit_2_with_one_message(args, stdin, message):
    p = run(args, stdin)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert message in err
    assert "Traceback" not in err


def test_no_valid_input_still_writes_the_error_svg():
    p = run([], b"nothing\n")
    assert p.returncode == 2 and b"No valid input" in p.stdout


def test_consistent_palette_file_is_read_and_written(tmp_path):
    (tmp_path / "palette.map").write_text("b->rgb(1,2,3)\n")
    p = run(["--cp"], FOLDED.encode(), cwd=tmp_path)
    assert p.returncode == 0
    assert b'fill="rgb(1,2,3)"' in p.stdout
    saved = (tmp_path / "palette.map").read_text().splitlines()
    assert "b->rgb(1,2,3)" in saved and any(l.startswith("c->rgb(") for l in saved)


def test_nameattr_file(tmp_path):
    (tmp_path / "attrs").write_text("b\ttitle=hello\thref=http://x/\n")
    p = run(["--nameattr", str(tmp_path / "attrs")], FOLDED.encode())
    assert p.returncode == 0 and b"<title>hello</title>" in p.stdout


def test_huge_inputs_do_not_crash(tmp_path):
    deep = ";".join(f"f{i}" for i in range(20000)) + " 5\n"
    big_name = "x" * 5_000_000 + ";y 3\n"
    huge_count = "a;b 100000000000000000000000000\n"
    for data in (deep, big_name, huge_count):
        p = run([], data.encode())
        assert p.returncode == 0, p.stderr[-500:]
        ET.fromstring(p.stdout)


def test_help_lists_the_flamegraph_pl_options():
    out = run(["--help"]).stdout.decode()
    for option in ("--title", "--minwidth", "--colors", "--cp", "--flamechart", "--negate",
                   "--nameattr", "--encoding", "--inverted", "--reverse", "--factor"):
        assert option in out
