"""Naming what real processes run: JIT code, the vDSO, binaries replaced while
running, binaries only a container sees, stripped binaries with debug files,
hidden kernel addresses. Real BPF, real processes, as root."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import require
from sysutil import (REPO, bpf_ready, parse_folded, profiler_cmd, run_profiler,  # noqa: F401
                     wait_for_programs, workloads)

pytestmark = pytest.mark.root

JS = """
const fs = require("fs");
const flag = process.argv[2];
function hotLoop(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i) % 7; return s; }
function lateWork(n) { let s = 0; for (let i = 0; i < n; i++) s += (i * 31) % 13; return s; }
const start = Date.now();
let t = 0, late = false;
while (Date.now() - start < 20000) {
  late = late || fs.existsSync(flag);  // lateWork is first run (and compiled) on a sign
  t += late ? lateWork(200000) : hotLoop(200000);
}
"""


@contextlib.contextmanager
def running(cmd, **kw):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, **kw)
    try:
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _rows(path, comm=None):
    return [(f, n) for f, n in parse_folded(open(path).read()) if comm is None or f[0] == comm]


def test_node_jit_frames_named_from_its_perf_map(bpf_ready, tmp_path):
    require(shutil.which("node") is not None, "needs node")
    script = tmp_path / "jit.js"
    script.write_text(JS)
    flag = tmp_path / "go-late"
    out = tmp_path / "node.folded"
    # No inlining: TurboFan may otherwise compile hotLoop into the script's
    # own loop (on a busy machine it did), leaving one JIT frame to name.
    with running(["node", "--perf-basic-prof", "--no-turbo-inlining", str(script), str(flag)],
                 cwd=tmp_path) as node:
        perf_map = f"/tmp/perf-{node.pid}.map"
        try:
            rec = subprocess.Popen(profiler_cmd("record", "-p", str(node.pid), "-F", "999",
                                                "-d", "4", "-o", str(out)),
                                   stderr=subprocess.PIPE, text=True, cwd=REPO)
            assert wait_for_programs(True), "the profiler never attached"
            time.sleep(1)  # the map has been opened (it is read when the run ends)
            flag.touch()  # lateWork is compiled from here on: a late entry
            _, stderr = rec.communicate(timeout=60)
            assert rec.returncode == 0, stderr
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(perf_map)
    rows = _rows(out)
    total = sum(n for _, n in rows)
    jit = [(f, n) for f, n in rows if any(x.endswith("_[j]") for x in f)]
    assert total > 300, rows[:5]
    assert sum(n for _, n in jit) > 0.3 * total, rows[:5]
    names = {x for f, _ in jit for x in f if x.endswith("_[j]")}
    assert any("hotLoop" in x for x in names), names
    assert any("lateWork" in x for x in names), names


def test_perf_map_of_another_user_is_refused_with_one_message(bpf_ready, tmp_path):
    require(shutil.which("node") is not None, "needs node")
    script = tmp_path / "jit.js"
    script.write_text(JS)
    with running(["node", str(script)], cwd=tmp_path) as node:  # no perf map of its own
        planted = f"/tmp/perf-{node.pid}.map"
        try:
            time.sleep(0.5)
            with open(planted, "w") as f:  # cover all of memory with one lie
                f.write("0 7fffffffffff evil_frame\n")
            os.chown(planted, 65534, 65534)
            out = tmp_path / "node.folded"
            run = run_profiler("record", "-p", str(node.pid), "-F", "499", "-d", "2",
                               "-o", str(out))
        finally:
            os.unlink(planted)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("owned by uid 65534") == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "evil_frame" not in out.read_text()


def test_vdso_frames_are_named(bpf_ready, workloads, tmp_path):
    out = tmp_path / "vdso.folded"
    run = run_profiler("record", "-F", "999", "-U", "-o", str(out), "--",
                       workloads["vdso_loop"], "2")
    assert run.returncode == 0, run.stderr
    rows = _rows(out, "vdso_loop")
    total = sum(n for _, n in rows)
    in_vdso = sum(n for f, n in rows if any(x.startswith("__vdso_") for x in f))
    assert total > 300
    assert in_vdso > 0.2 * total, sorted(rows, key=lambda r: -r[1])[:5]
    assert not any("[vdso]" in x for f, _ in rows for x in f), [f for f, _ in rows
                                                               if any("[vdso]" in x for x in f)][:3]


def test_binary_replaced_while_running_keeps_its_own_names(bpf_ready, workloads, tmp_path):
    """A deploy renames a new build over the running one: the path now names
    another file, and reading it would name frames after the wrong code."""
    exe = tmp_path / "service"
    shutil.copy(workloads["fp_chain"], exe)
    with running([str(exe), "20"]) as proc:
        time.sleep(0.3)
        new = tmp_path / "service.new"
        shutil.copy(workloads["threads"], new)
        os.rename(new, exe)  # the running binary is now deleted; the path is another one
        out = tmp_path / "replaced.folded"
        run = run_profiler("record", "-p", str(proc.pid), "-F", "999", "-d", "2", "-o", str(out))
    assert run.returncode == 0, run.stderr
    rows = _rows(out)
    total = sum(n for _, n in rows)
    named = sum(n for f, n in rows if "chain_leaf" in f)
    assert total > 300 and named > 0.9 * total, rows[:5]


def _strip_with_debuglink(src: str, exe: str) -> None:
    debug = exe + ".debug"
    subprocess.run(["objcopy", "--only-keep-debug", src, debug], check=True)
    subprocess.run(["objcopy", "--strip-all", f"--add-gnu-debuglink={debug}", src, exe],
                   check=True)


def test_container_binary_found_through_its_own_root(bpf_ready, workloads, tmp_path):
    """A process in another mount namespace runs a stripped binary whose path
    and debuglink file exist only inside that namespace."""
    require(shutil.which("unshare") is not None, "needs unshare (util-linux)")
    staged = tmp_path / "staged"
    staged.mkdir()
    _strip_with_debuglink(workloads["fp_chain"], str(staged / "app"))
    inside = tmp_path / "inside"  # empty here; a tmpfs holding the app inside
    inside.mkdir()
    script = (f"mount -t tmpfs none {inside} && cp {staged}/app {staged}/app.debug {inside}/ "
              f"&& exec {inside}/app 20")
    with running(["unshare", "--mount", "sh", "-c", script]) as proc:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.readlink(f"/proc/{proc.pid}/exe").endswith("/app"):
            time.sleep(0.05)
        shutil.rmtree(staged)  # nothing of the app is left outside the namespace
        assert not os.path.exists(inside / "app")
        out = tmp_path / "container.folded"
        run = run_profiler("record", "-p", str(proc.pid), "-F", "999", "-d", "2", "-o", str(out))
    assert run.returncode == 0, run.stderr
    rows = _rows(out)
    total = sum(n for _, n in rows)
    named = sum(n for f, n in rows if "chain_leaf" in f and "main" in f)
    assert total > 300 and named > 0.9 * total, rows[:5]


def test_stripped_binary_with_build_id_debug_file(bpf_ready, workloads, tmp_path):
    src = tmp_path / "src.c"
    shutil.copy(os.path.join(os.path.dirname(__file__), "workloads", "fp_chain.c"), src)
    full = tmp_path / "full"
    subprocess.run(["gcc", "-O2", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls",
                    "-Wl,--build-id", "-o", str(full), str(src)], check=True)
    note = subprocess.run(["readelf", "-n", str(full)], capture_output=True, text=True).stdout
    build_id = note.split("Build ID:")[1].split()[0]
    debug_root = tmp_path / "debug"
    target = debug_root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    target.parent.mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(full), str(target)], check=True)
    exe = tmp_path / "stripped"
    subprocess.run(["objcopy", "--strip-all", str(full), str(exe)], check=True)
    out = tmp_path / "raw.json"
    run = run_profiler("record", "-F", "999", "-U", "-o", str(out), "--", str(exe), "2")
    assert run.returncode == 0, run.stderr

    def named_share(*extra):
        folded = tmp_path / "out.folded"
        rep = run_profiler("report", str(out), "-o", str(folded), *extra)
        assert rep.returncode == 0, rep.stderr
        rows = _rows(folded, "stripped")
        return sum(n for f, n in rows if "chain_leaf" in f) / max(1, sum(n for _, n in rows))

    assert named_share("--debug-dir", str(debug_root)) > 0.9
    assert named_share() == 0  # the default debug dir has no such file: stripped it stays


def test_no_demangle_keeps_raw_names(bpf_ready, workloads, tmp_path):
    out = tmp_path / "raw.folded"
    run = run_profiler("record", "-F", "499", "-U", "--no-demangle", "-o", str(out), "--",
                       workloads["threads"], "1")
    assert run.returncode == 0, run.stderr
    frames = {x for f, _ in _rows(out, "threads") for x in f}
    assert any(x.startswith("_Z") for x in frames), sorted(frames)[:20]
    assert not any("::" in x for x in frames), sorted(frames)[:20]


def test_hidden_kernel_addresses_give_kernel_frames_and_one_warning(bpf_ready, workloads, tmp_path):
    with open("/proc/sys/kernel/kptr_restrict") as f:
        saved = f.read().strip()
    out = tmp_path / "hidden.json"
    run = run_profiler("record", "-e", "page-faults", "-c", "1", "-K", "-o", str(out), "--",
                       workloads["pagefault"], "3000")
    assert run.returncode == 0, run.stderr
    folded = tmp_path / "hidden.folded"
    try:
        with open("/proc/sys/kernel/kptr_restrict", "w") as f:
            f.write("2")
        rep = run_profiler("report", str(out), "-o", str(folded))
    finally:
        with open("/proc/sys/kernel/kptr_restrict", "w") as f:
            f.write(saved)
    assert rep.returncode == 0, rep.stderr
    assert rep.stderr.count("kernel addresses are hidden") == 1, rep.stderr
    frames = {x for f, _ in _rows(folded) for x in f[1:]}
    assert frames == {"[kernel]_[k]"}, sorted(frames)[:10]
    # The same profile with the addresses visible names its kernel frames.
    rep = run_profiler("report", str(out), "-o", str(folded))
    frames = {x for f, _ in _rows(folded) for x in f[1:]}
    assert "[kernel]_[k]" not in frames and len(frames) > 3
