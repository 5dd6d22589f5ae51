"""C++ and Rust names demangled with one `c++filt` process per run.

binutils' c++filt handles Itanium C++ (`_Z`) and both Rust manglings (legacy
`_ZN...17h<hash>E` and v0 `_R`). Writing a demangler is a project of its own;
one batch call for all names costs a few milliseconds per run, where a call
per name would cost about a millisecond each. Without c++filt names stay
mangled (still unique and searchable).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from typing import Iterable

_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")


def is_mangled(name: str) -> bool:
    return name.startswith(("_Z", "__Z", "_R"))


def demangle_all(names: Iterable[str]) -> dict[str, str]:
    """mangled name -> readable name, for every mangled name given."""
    mangled = sorted({n for n in names if is_mangled(n) and "\n" not in n})
    if not mangled:
        return {}
    tool = shutil.which("c++filt")
    if tool is None:
        return {n: n for n in mangled}
    try:
        done = subprocess.run([tool], input="\n".join(mangled) + "\n", capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return {n: n for n in mangled}
    out = done.stdout.split("\n")
    if done.returncode != 0 or len(out) < len(mangled):
        return {n: n for n in mangled}
    return {n: _RUST_HASH.sub("", d) if d else n for n, d in zip(mangled, out)}
