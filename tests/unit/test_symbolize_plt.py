"""PLT stubs are named `function@plt`, as objdump names them (the oracle:
binutils' own synthetic symbols, printed by `objdump -d`)."""
from __future__ import annotations

import re
import shutil
import subprocess
import os
import sys

import pytest

from conftest import require
from profiler.binary.plt import plt_table
from profiler.symbolize.symbolizer import name_offsets

_LABEL = re.compile(r"^([0-9a-f]+) <(.+)@plt>:$")


def _objdump_stubs(path: str) -> dict[int, str]:
    out = subprocess.run(["objdump", "-d", "-j", ".plt", "-j", ".plt.sec", "-j", ".plt.got",
                          path], capture_output=True, text=True).stdout
    return {int(m.group(1), 16): m.group(2) for m in map(_LABEL.match, out.splitlines()) if m}


def _exported(path: str) -> dict[int, str]:
    """Address -> name of the functions a file exports (nm -D)."""
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True,
                         text=True).stdout
    found: dict[int, set[str]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWiI":
            found.setdefault(int(parts[0], 16), set()).add(parts[2].split("@", 1)[0])
    return found


def _targets(tmp_path) -> list[str]:
    # The machine's python3 (pyenv's, with a shared libpython), not the venv's.
    libpython = subprocess.run(
        [shutil.which("python3", path=os.environ["PATH"].replace(sys.prefix + "/bin", "")) or
         "python3", "-c", "import sysconfig as s; print(s.get_config_var('LIBDIR') + '/' + "
         "s.get_config_var('LDLIBRARY'))"], capture_output=True, text=True).stdout.strip()
    src = tmp_path / "calls.c"
    src.write_text("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
                   "int main(int c, char **v) { char *p = malloc(c * 10); strcpy(p, v[0]);"
                   " puts(p); printf(\"%d\\n\", atoi(p)); free(p); return 0; }\n")
    plain, ibt = tmp_path / "calls", tmp_path / "calls_ibt"
    subprocess.run(["gcc", "-O2", "-o", str(plain), str(src)], check=True)
    subprocess.run(["gcc", "-O2", "-fcf-protection=full", "-Wl,-z,ibtplt", "-o", str(ibt),
                    str(src)], check=True)
    paths = [str(plain), str(ibt), "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/gzip"]
    return paths + ([libpython] if os.path.isfile(libpython) else []) + ["/usr/bin/python3.11"]


def test_stubs_are_named_as_objdump_names_them(tmp_path):
    for tool in ("objdump", "gcc"):
        require(shutil.which(tool) is not None, f"needs {tool} (binutils, gcc)")
    checked = 0
    for path in _targets(tmp_path):
        expected = _objdump_stubs(path)
        if not expected:
            continue
        table = plt_table(open(path, "rb"))
        ours = {table.starts[i]: table.name(i) for i in range(len(table))} if table else {}
        # A static IFUNC's stub: objdump writes its resolver's address, we
        # the function exported there (checked against nm -D).
        exported = _exported(path)
        want = {a: exported.get(int(n[6:], 16), {n}) if n.startswith("*ABS*+0x") else {n}
                for a, n in expected.items()}
        missing = {hex(a): (n, ours.get(a)) for a, n in want.items() if ours.get(a) not in n}
        assert not missing, (path, list(missing.items())[:10])
        checked += len(expected)
    assert checked > 1000  # libpython alone has about 1,400 stubs


def test_a_frame_in_a_stub_reads_function_at_plt(tmp_path):
    require(shutil.which("objdump") is not None, "needs objdump (binutils)")
    path = _targets(tmp_path)[0]
    stubs = _objdump_stubs(path)
    require(bool(stubs), "the test program has PLT stubs")
    addresses = sorted(stubs)
    # File offsets equal vaddrs for .plt in this layout only when they do:
    # go through the symbolizer's own path with offsets from the segments.
    from profiler.binary.elf import read_image_file
    segs = read_image_file(path, tables=False).segments
    seg = next(s for s in segs if s.vaddr <= addresses[0] < s.vaddr + s.filesz)
    offsets = [a - seg.vaddr + seg.offset + 4 for a in addresses]
    assert name_offsets(path, offsets) == [f"{stubs[a]}@plt" for a in addresses]


@pytest.mark.parametrize("junk", [b"", b"\x7fELF", b"\x7fELF\x02\x01" + b"\xff" * 200])
def test_damaged_files_name_no_stubs(tmp_path, junk):
    f = tmp_path / "junk"
    f.write_bytes(junk)
    assert plt_table(open(f, "rb")) is None
