"""`make demo`: profile a bundled workload live for ~3 s and write its flame graph.

The workload (profiler/data/demo_workload.c) is compiled on the fly with gcc.
Without root, BCC or gcc, the demo says why and renders the bundled example
profile instead.
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

from profiler.errors import ProfilerError
from profiler.options import RecordOptions, Sampling, Target, TargetKind

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"
SECONDS = 3


def _fallback(out: pathlib.Path, why: str) -> int:
    from flamegraph.api import render
    from flamegraph.options import Options
    print(f"demo: cannot profile live ({why}); rendering the bundled example instead",
          file=sys.stderr)
    lines = (DATA / "example.folded").read_text(encoding="utf-8").splitlines()
    out.write_bytes(render(lines, Options(title="Example profile (bundled)")).svg)
    print(out)
    return 0


def main() -> int:
    out = pathlib.Path("demo-flamegraph.svg").resolve()
    gcc = shutil.which("gcc")
    if gcc is None:
        return _fallback(out, "gcc is not installed")
    with tempfile.TemporaryDirectory(prefix="profiler-demo-") as tmp:
        exe = pathlib.Path(tmp) / "demo-server"
        subprocess.run([gcc, "-O2", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls",
                        "-o", str(exe), str(DATA / "demo_workload.c")], check=True)
        from profiler.export.write import write_output
        from profiler.options import Grouping, OutputFormat
        from profiler.record.recorder import record
        options = RecordOptions(target=Target(kind=TargetKind.COMMAND,
                                              command=(str(exe), str(SECONDS))),
                                sampling=Sampling(frequency=999))
        print(f"demo: profiling {exe.name} for {SECONDS} s at 999 Hz ...", file=sys.stderr)
        try:
            recording = record(options)
        except ProfilerError as err:
            return _fallback(out, err.message.splitlines()[0])
        try:
            folded = write_output(recording.profile, str(out), OutputFormat.SVG, Grouping.COMM,
                                  path_for=recording.files.path_for)
        finally:
            recording.close()
    print(f"demo: {folded.meta.summary[0]}", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
