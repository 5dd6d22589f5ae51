"""The program and user space must put a judged (process, pc) pair in the
same slot of leaf_rules, or the program never finds a judgement. The C
function is taken from profile.bpf.c as it is and compiled with gcc here."""
from __future__ import annotations

import random
import re
import shutil
import subprocess

from conftest import ROOT, require
from profiler.record.bpf.leaves import leaf_slot

SOURCE = ROOT / "profiler" / "record" / "bpf" / "profile.bpf.c"


def test_python_and_the_program_agree_on_slots(tmp_path):
    require(shutil.which("gcc") is not None, "needs gcc")
    text = SOURCE.read_text()
    fn = re.search(r"static __always_inline u32 leaf_slot\(.*?\n}\n", text, re.S)
    assert fn, "leaf_slot() not found in profile.bpf.c"
    rng = random.Random(7)
    cases = [(rng.randrange(1, 1 << 22), rng.randrange(0, 1 << 48)) for _ in range(2000)]
    cases += [(1, 0), ((1 << 22) - 1, (1 << 64) - 1)]
    src = tmp_path / "slot.c"
    src.write_text(
        "#include <stdio.h>\n#include <stdint.h>\n"
        "typedef uint32_t u32; typedef uint64_t u64;\n#define __always_inline inline\n"
        "#define LEAF_RULES 16384\n" + fn.group(0) +
        "int main(void) { unsigned long long pid, ip;\n"
        "  while (scanf(\"%llu %llu\", &pid, &ip) == 2) printf(\"%u\\n\", leaf_slot(pid, ip));\n"
        "  return 0; }\n")
    exe = tmp_path / "slot"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], input="".join(f"{p} {i}\n" for p, i in cases),
                         capture_output=True, text=True, check=True).stdout.split()
    assert [int(x) for x in out] == [leaf_slot(p, i, 16384) for p, i in cases]
