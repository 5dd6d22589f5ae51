"""`flamegraph-diff [-n] [-s] BEFORE AFTER`: a drop-in for difffolded.pl.

This module only translates argv and does the I/O; `flamegraph.diff` computes.
Known failures become one message on stderr and exit status 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from flamegraph.diff import diff_folded
from flamegraph.errors import InputError
from flamegraph.folded import Folded, decode_lines, describe_ignored, parse_folded
from flamegraph.output import run_command, write_all

PROG = "flamegraph-diff"
_FOLDED_HINT = "each line should read frame;frame;frame COUNT (the output of a stackcollapse script)"
# Compressed profiles are a common mistake; their bytes can by chance form a
# few "valid" lines, so recognise them by magic number instead.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Diff two folded-stack files (a drop-in for FlameGraph's difffolded.pl): "
                    "prints `stack COUNT_BEFORE COUNT_AFTER` for every stack in either file, "
                    "sorted. Pipe it into flamegraph for a differential flame graph.",
        epilog=f"example: {PROG} -n before.folded after.folded | flamegraph > diff.svg")
    parser.add_argument("-n", "--normalize", action="store_true",
                        help="scale BEFORE's counts to AFTER's total (truncated to integers)")
    parser.add_argument("-s", "--strip-hex", action="store_true",
                        help="replace hex addresses (0x1234abcd) in stacks with 0x...")
    parser.add_argument("before", metavar="BEFORE", help="folded stacks before the change (- for stdin)")
    parser.add_argument("after", metavar="AFTER", help="folded stacks after the change (- for stdin)")
    return parser


def read_bytes(path: str) -> bytes:
    """The file's bytes ('-': standard input); InputError if it cannot be read."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a folded-stacks file",
                         "give the folded file itself, e.g. out.folded") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}",
                         "check the path; give two folded-stack files, or - for standard input") from None


def load(path: str) -> Folded:
    data = read_bytes(path)
    for magic, kind in _COMPRESSED.items():
        if data.startswith(magic):
            raise InputError(f"{path} is {kind}-compressed, not folded stacks",
                             f"decompress it first, e.g. {PROG} <({kind} -dc {path}) ...")
    folded = parse_folded(decode_lines(data))
    if folded.ignored and not folded.entries:
        raise InputError(f"{path}: no valid folded line ({folded.ignored} line(s) with invalid format)",
                         _FOLDED_HINT)
    return folded


def report(path: str, folded: Folded) -> None:
    """One summary line per file, never one per bad line."""
    if folded.ignored:
        print(f"{PROG}: {path}: " + describe_ignored(folded.ignored, folded.ignored_line_numbers),
              file=sys.stderr)
    if folded.differential:
        # Probably an earlier diff's output; difffolded.pl keeps the first
        # count as part of the stack, and so do we, but say so.
        print(f"{PROG}: {path}: some lines have two counts; the last is used and the "
              "other stays part of the stack", file=sys.stderr)


def run(before_path: str, after_path: str, *, normalize: bool, strip_hex: bool) -> bytes:
    if before_path == after_path == "-":
        raise InputError("BEFORE and AFTER cannot both be standard input",
                         "give at least one of them as a file")
    before = load(before_path)
    after = load(after_path)
    if not before.entries and not after.entries:
        raise InputError(f"no stacks in {before_path} or {after_path}: both are empty",
                         "give two folded-stack files, e.g. from stackcollapse-perf.pl")
    report(before_path, before)
    report(after_path, after)
    lines = diff_folded(before, after, normalize=normalize, strip_hex=strip_hex)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        ns = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as e:  # argparse has printed usage and its message
        return int(e.code or 0)

    def body() -> int:
        output = run(ns.before, ns.after, normalize=ns.normalize, strip_hex=ns.strip_hex)
        write_all(sys.stdout.buffer, output)
        return 0

    return run_command(PROG, body)


def main_entry() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    main_entry()
