"""C++ and Rust names demangled with one `c++filt` process per run.

binutils' c++filt handles Itanium C++ (`_Z`) and both Rust manglings (legacy
`_ZN...17h<hash>E` and v0 `_R`). Writing a demangler is a project of its own;
one batch call for all names costs a few milliseconds per run, where a call
per name would cost about a millisecond each. Without c++filt names stay
mangled (still unique and searchable).

Names are one a line, so a name that could break a line (any control
character; binaries are not trusted) is left as it is, and an answer of any
other length than the question is not used at all: a shifted answer would
put names on the wrong frames.
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Iterable


def is_mangled(name: str) -> bool:
    return name.startswith(("_Z", "__Z", "_R"))


def demangle_all(names: Iterable[str]) -> dict[str, str]:
    """mangled name -> readable name, for every mangled name given."""
    mangled = sorted({n for n in names if is_mangled(n) and n.isprintable()})
    if not mangled:
        return {}
    unchanged = {n: n for n in mangled}
    tool = shutil.which("c++filt")
    if tool is None:
        return unchanged
    question = b"".join(n.encode("utf-8", "surrogateescape") + b"\n" for n in mangled)
    try:
        # -i: no verbose detail; the names nm -C and addr2line -C print
        # (std::string, not std::basic_string<char, ...>; no Rust hashes).
        done = subprocess.run([tool, "-i"], input=question, capture_output=True,
                              timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return unchanged
    answer = done.stdout.split(b"\n")
    if done.returncode != 0 or len(answer) != len(mangled) + 1 or answer[-1]:
        return unchanged
    return {n: d.decode("utf-8", "replace") or n for n, d in zip(mangled, answer)}
