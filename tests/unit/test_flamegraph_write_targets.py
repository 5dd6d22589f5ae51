"""Where an output goes: a regular file atomically, but a device, a FIFO or
a symbolic link keeps what it is (`-o /dev/null` must not replace the
device node with a file, as a rename over it would)."""
from __future__ import annotations

import os
import stat
import threading

import pytest

from flamegraph.errors import WriteError
from flamegraph.output import write_atomically


def test_dev_null_stays_a_device():
    before = os.stat("/dev/null")
    write_atomically("/dev/null", b"folded 1\n")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_atomically(str(fifo), b"a;b 2\n")
    reader.join(10)
    assert got == [b"a;b 2\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symlink_is_kept_and_its_target_written(tmp_path):
    real = tmp_path / "real.svg"
    real.write_bytes(b"old")
    link = tmp_path / "link.svg"
    link.symlink_to(real)
    write_atomically(str(link), b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_a_regular_file_is_replaced_whole(tmp_path):
    out = tmp_path / "x.svg"
    out.write_bytes(b"old")
    write_atomically(str(out), b"new")
    assert out.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["x.svg"]


def test_a_missing_directory_is_one_error(tmp_path):
    with pytest.raises(WriteError, match="cannot write"):
        write_atomically(str(tmp_path / "no" / "x.svg"), b"x")
