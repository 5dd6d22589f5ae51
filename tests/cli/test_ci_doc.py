"""Every command of the CI job in docs/ci.md, run for real.

The job's `run:` steps are taken from the document itself, so the page cannot
drift from what works: setup, building a benchmark, profiling it twice (the
baseline, then the pull request), comparing, and the step summary.
"""
import os
import pathlib
import re
import subprocess

import pytest

from conftest import require

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ci.md"

BENCH_C = r"""
#include <stdint.h>
#include <time.h>
static volatile uint64_t sink;
__attribute__((noinline)) static void crunch(int n) { for (int i = 0; i < n; i++) sink += i * 7; }
__attribute__((noinline)) static void parse(void) { crunch(20000); }
__attribute__((noinline)) static void render(void) { crunch(20000); }
int main(void) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do { parse(); render(); clock_gettime(CLOCK_MONOTONIC, &now); }
    while (now.tv_sec - start.tv_sec < 3);
    return 0;
}
"""


def job_commands() -> list[str]:
    """The `run:` commands of the YAML job, folded scalars joined as YAML does."""
    yaml = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S).group(1)
    commands, lines = [], yaml.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)(?:- )?run: (.*)$", line)
        if not m:
            continue
        if m.group(2).strip() in (">-", ">", "|"):
            indent = len(m.group(1))
            body = []
            for follow in lines[i + 1:]:
                if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                    break
                body.append(follow.strip())
            commands.append(" ".join(b for b in body if b))
        else:
            commands.append(m.group(2).strip())
    return commands


def test_the_document_has_the_steps_we_run():
    commands = job_commands()
    assert any(c.startswith("sudo make -C profiler-tool setup") for c in commands)
    assert any("record" in c and "$PROFILER" in c for c in commands)
    assert any("compare" in c and "--fail-on" in c for c in commands)


def _bpf_ready() -> bool:
    if os.geteuid() != 0:
        return False
    probe = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import bcc"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.root
def test_every_command_of_the_job_runs(tmp_path):
    require(_bpf_ready(), "needs root and BCC to profile the benchmark")
    (tmp_path / "profiler-tool").symlink_to(ROOT)
    (tmp_path / "bench.c").write_text(BENCH_C)
    summary = tmp_path / "step-summary.md"
    env = dict(os.environ, PROFILER="profiler-tool/.venv/bin/profiler",
               GITHUB_STEP_SUMMARY=str(summary))
    prelude = "set -e\ncommand -v sudo >/dev/null || sudo() { \"$@\"; }\n"

    def step(command):
        p = subprocess.run(["bash", "-c", prelude + command], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"{command}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
        return p

    commands = job_commands()
    record = next(c for c in commands if " record " in c)
    for command in commands:
        if " compare " in command:
            # The pull request's run compares with main's: make main's first.
            step(record)
            (tmp_path / "baseline").mkdir()
            (tmp_path / "current.folded").rename(tmp_path / "baseline" / "current.folded")
            step(record)
        step(command)

    folded = (tmp_path / "current.folded").read_text()
    assert "crunch" in folded  # main may be skipped: a frameless leaf hides its caller
    assert (tmp_path / "diff.svg").read_bytes().startswith(b"<?xml")
    assert "verdict: **pass**" in summary.read_text()
