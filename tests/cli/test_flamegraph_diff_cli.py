"""`flamegraph-diff` as users run it: exit codes, messages, never a traceback."""
import gzip
import subprocess
import sys

import pytest

from flamegraph import diff_cli

BEFORE = "main;a 3\nmain;b 1\n"
AFTER = "main;a 2\nmain;c 4\n"


def run(args, stdin=b"", cwd=None):
    return subprocess.run([sys.executable, "-m", "flamegraph.diff_cli", *map(str, args)],
                          input=stdin, capture_output=True, cwd=cwd, timeout=60)


@pytest.fixture
def files(tmp_path):
    before, after = tmp_path / "before.folded", tmp_path / "after.folded"
    before.write_text(BEFORE)
    after.write_text(AFTER)
    return before, after


def assert_fails_cleanly(p, *needles):
    assert p.returncode == 2, p.stderr
    assert p.stdout == b""
    err = p.stderr.decode()
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_diff_to_stdout(files):
    p = run(files)
    assert p.returncode == 0 and p.stderr == b""
    assert p.stdout == b"main;a 3 2\nmain;b 1 0\nmain;c 0 4\n"


def test_output_is_byte_reproducible(files):
    assert run(files).stdout == run(files).stdout


def test_normalize_and_strip_hex_flags_combine_as_in_difffolded(tmp_path):
    (tmp_path / "b").write_text("f;0x1 1\nf;0x2 1\ng 2\n")
    (tmp_path / "a").write_text("f;0x3 8\n")
    expected = b"f;0x... 4 8\ng 4 0\n"
    for flags in (["-ns"], ["-n", "-s"], ["--normalize", "--strip-hex"]):
        p = run([*flags, tmp_path / "b", tmp_path / "a"])
        assert p.returncode == 0 and p.stdout == expected, (flags, p.stderr)


def test_invalid_lines_are_skipped_and_reported_once_per_file(tmp_path, files):
    bad = tmp_path / "bad.folded"
    bad.write_text("main;a 1\nnot folded\nmain;b x\nmain;b 2\n")
    p = run([bad, files[1]])
    assert p.returncode == 0
    assert p.stdout == b"main;a 1 2\nmain;b 2 0\nmain;c 0 4\n"
    assert p.stderr.decode().splitlines() == \
        [f"flamegraph-diff: {bad}: ignored 2 line(s) with invalid format (line 2, 3)"]


def test_crlf_files(tmp_path, files):
    crlf = tmp_path / "crlf.folded"
    crlf.write_bytes(BEFORE.replace("\n", "\r\n").encode())
    assert run([crlf, files[1]]).stdout == run(files).stdout


def test_invalid_utf8_is_replaced_not_fatal(tmp_path, files):
    latin1 = tmp_path / "latin1.folded"
    latin1.write_bytes(b"main;caf\xe9 2\n")
    p = run([latin1, files[1]])
    assert p.returncode == 0, p.stderr
    assert "main;caf\ufffd 2 0\n" in p.stdout.decode("utf-8")


def test_one_empty_side_is_a_valid_diff(tmp_path, files):
    empty = tmp_path / "empty.folded"
    empty.write_bytes(b"")
    p = run([empty, files[1]])
    assert p.returncode == 0 and p.stdout == b"main;a 0 2\nmain;c 0 4\n"


def test_dash_reads_standard_input(files):
    p = run(["-", files[1]], stdin=BEFORE.encode())
    assert p.returncode == 0 and p.stdout == run(files).stdout


def test_help_exits_zero_and_names_the_options():
    p = run(["--help"])
    assert p.returncode == 0
    assert b"BEFORE" in p.stdout and b"--normalize" in p.stdout


# failures: one message, exit 2, no traceback


@pytest.mark.parametrize("args", [[], ["one"], ["one", "two", "three"], ["-x", "a", "b"]])
def test_wrong_arguments(args):
    assert_fails_cleanly(run(args), "usage: flamegraph-diff")


def test_missing_file(tmp_path, files):
    p = run([tmp_path / "nope.folded", files[1]])
    assert_fails_cleanly(p, "cannot read", "nope.folded", "No such file", "hint:")


def test_missing_after_file(tmp_path, files):
    assert_fails_cleanly(run([files[0], tmp_path / "nope"]), "cannot read", "hint:")


def test_directory(tmp_path, files):
    assert_fails_cleanly(run([tmp_path, files[1]]), "is a directory", "hint:")


def test_other_os_errors_are_reported_with_their_reason(files):
    # a path through a regular file: NotADirectoryError, even for root
    assert_fails_cleanly(run([f"{files[0]}/x", files[1]]), "cannot read", "Not a directory")


def test_binary_garbage(tmp_path, files):
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01\x02\xff\xfe\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x7f\x80")
    assert_fails_cleanly(run([files[0], garbage]), "no valid folded line", "hint:")


def test_compressed_input_gets_a_specific_hint(tmp_path, files):
    packed = tmp_path / "before.folded.gz"
    packed.write_bytes(gzip.compress(BEFORE.encode()))
    assert_fails_cleanly(run([packed, files[1]]), "gzip-compressed", "decompress")


def test_both_files_empty(tmp_path):
    (tmp_path / "e1").write_bytes(b"")
    (tmp_path / "e2").write_bytes(b"")
    assert_fails_cleanly(run([tmp_path / "e1", tmp_path / "e2"]), "both are empty", "hint:")


def test_both_standard_input(files):
    assert_fails_cleanly(run(["-", "-"]), "standard input")


def test_closed_stdout_is_quiet(tmp_path):
    big = tmp_path / "big.folded"
    big.write_text("".join(f"main;f{i} {i}\n" for i in range(100_000)))
    proc = subprocess.Popen([sys.executable, "-m", "flamegraph.diff_cli", str(big), str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()  # the output is far larger than a pipe buffer: the write fails
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == b""


def test_main_returns_the_exit_code_in_process(files, capsys):
    assert diff_cli.main([str(files[0]), str(files[1])]) == 0
    assert capsys.readouterr().out == "main;a 3 2\nmain;b 1 0\nmain;c 0 4\n"
    assert diff_cli.main([str(files[0])]) == 2
