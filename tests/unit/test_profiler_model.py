"""Raw profile JSON round trip, unwinding, loss accounting and the CLI's
translation into options (no BPF needed)."""
import os

import pytest

from profiler.cli import main as cli
from profiler.errors import KernelHeadersError, OutputError
from profiler.record.kheaders import plan_headers
from profiler.model.maps import MapEntry
from profiler.model.raw import CountRecord, MapsSnapshot, ProcessInfo, RawProfile, RecordingInfo
from profiler.options import (Grouping, OutputFormat, OutputOptions, RecordOptions, Sampling,
                              StackSides, TargetKind)
from profiler.export import format_for_path
from profiler.symbolize.summary import losses_of
from profiler.unwind.stacks import unwind


def profile(stats=None, counts=None):
    info = RecordingInfo(target="PID 5", event="cpu-clock", event_type=1, event_config=0,
                         frequency=99, period=None, duration=2.0, cpus=(0, 1), sides="both",
                         per_thread=False, started=1.5, command_status=3, stopped_by="duration")
    entry = MapEntry(start=0x1000, end=0x2000, perms="r-xp", offset=0, dev="fd:01", inode=7,
                     path="/bin/x y")
    return RawProfile(
        info=info,
        counts=counts or (CountRecord(pid=5, tid=0, comm="x", user_stack=11, kernel_stack=22, count=4),
                          CountRecord(pid=5, tid=0, comm="x", user_stack=0, kernel_stack=22, count=1),
                          CountRecord(pid=9, tid=0, comm="kworker", user_stack=0, kernel_stack=22, count=2)),
        stacks={11: (0x1010, 0x1020), 22: (0xFFFF1, 0xFFFF2, 0xFFFF3)},
        processes={5: ProcessInfo(pid=5, snapshots=(MapsSnapshot(time=0.5, entries=(entry,)),)),
                   9: ProcessInfo(pid=9, kernel_thread=True)},
        stats=stats or {"samples": 8, "lost_stack_store_full": 1, "lost_counts_map_full": 0,
                        "kernel_walk_errors": 0})


def test_json_round_trip():
    p = profile()
    assert RawProfile.from_json(p.to_json()) == p


@pytest.mark.parametrize("text", ["", "{}", '{"format": "profiler-raw", "version": 99}', "[1]"])
def test_bad_raw_files_are_one_error(text):
    with pytest.raises(OutputError):
        RawProfile.from_json(text)


def test_unwind_orders_root_first_and_classifies():
    samples, summary = unwind(profile())
    assert samples[0].user == (0x1020, 0x1010) and samples[0].kernel == (0xFFFF3, 0xFFFF2, 0xFFFF1)
    assert summary.no_user_stack == 1  # pid 5 without user frames; the kernel thread is fine


def test_losses_count_every_sample():
    losses = losses_of(profile())
    assert losses.samples == 8
    assert losses.by_reason["dropped (stack store full)"] == 1
    assert losses.by_reason["without user stack"] == 1
    assert losses.by_reason["unaccounted"] == 0  # 8 taken = 7 counted + 1 dropped
    assert losses.describe().startswith("8 samples, 2 lost (25.00%)")


def test_cli_defaults_equal_options_defaults():
    ns = cli.build_parser().parse_args(["record"])
    options = cli.record_options(ns, ())
    assert options == RecordOptions(show_progress=options.show_progress)
    out = cli.output_options(ns)
    assert out == OutputOptions()
    ns = cli.build_parser().parse_args(["report", "x.json", "--no-demangle",
                                        "--debug-dir", "rel/dir", "--debug-dir", "/abs"])
    symbolize = cli.output_options(ns).symbolize
    assert symbolize.demangle is False
    assert symbolize.debug_dirs == (os.path.abspath("rel/dir"), "/abs")


def test_cli_translation():
    ns = cli.build_parser().parse_args(["record", "-p", "1,2", "-c", "1000", "-e", "page-faults",
                                        "-K", "--per-thread", "-C", "0", "-d", "2.5"])
    o = cli.record_options(ns, ())
    assert o.target.kind is TargetKind.PIDS and o.target.ids == (1, 2)
    assert o.sampling == Sampling(frequency=None, period=1000)
    assert (o.event, o.sides, o.grouping, o.cpus, o.duration) == \
        ("page-faults", StackSides.KERNEL, Grouping.THREAD, (0,), 2.5)
    o = cli.record_options(cli.build_parser().parse_args(["record"]), ("ls", "-l"))
    assert o.target.kind is TargetKind.COMMAND and o.target.command == ("ls", "-l")


def test_output_format_from_extension():
    assert format_for_path("a.svg") is OutputFormat.SVG
    assert format_for_path("a.folded") is format_for_path("a.txt") is OutputFormat.FOLDED
    assert format_for_path("a.json") is OutputFormat.RAW
    assert format_for_path("-") is OutputFormat.FOLDED
    assert format_for_path("a.png") is None
    # The longest extension that matches: a speedscope file is JSON too.
    assert format_for_path("a.speedscope.json") is OutputFormat.SPEEDSCOPE
    assert format_for_path("a.pb.gz") is format_for_path("A.PB") is OutputFormat.PPROF


def test_bad_usage_is_one_message(capsys):
    assert cli.main(["record", "-o", "x.png"]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the output format" in err and "Traceback" not in err
    assert cli.main(["record", "-p", "1", "--", "ls"]) == 2


def test_print_program_shows_flags_and_source(capsys):
    assert cli.main(["record", "--print-program", "-p", "1", "--per-thread", "-U"]) == 0
    out = capsys.readouterr().out
    assert "#define FILTER_TGID 1" in out and "#define PER_THREAD 1" in out
    assert "#define WANT_KERNEL 0" in out and "int prof_sample(" in out


def test_headers_plan(tmp_path):
    # The fixture is named for this machine's Debian architecture (amd64,
    # arm64, ...), as the headers installed here are.
    import platform
    from profiler.record.kheaders import _DEB_ARCH
    arch = _DEB_ARCH.get(platform.machine(), (platform.machine(), ""))[0]
    src = tmp_path / "src"
    (src / f"linux-headers-6.1.0-9-{arch}" / "include" / "generated").mkdir(parents=True)
    common = src / "linux-headers-6.1.0-9-common" / "include" / "linux"
    common.mkdir(parents=True)
    (common / "kconfig.h").write_text("")
    (src / f"linux-headers-5.10.0-1-{arch}").mkdir()
    plan = plan_headers("6.18.0-test", src=str(src), modules=str(tmp_path / "none"), environ={},
                        builtin=str(tmp_path / "none"))
    assert plan.arch_dir.name == f"linux-headers-6.1.0-9-{arch}"
    assert plan.common_dir.name == "linux-headers-6.1.0-9-common"
    with pytest.raises(KernelHeadersError) as e:
        plan_headers("6.18.0-test", src=str(tmp_path / "empty"), modules=str(tmp_path / "none"),
                     environ={}, builtin=str(tmp_path / "none"))
    assert "tried" in e.value.message and "make setup" in e.value.remedy


@pytest.mark.parametrize("cgroup_v2", [True, False])
def test_print_program_for_a_command_shows_the_filter_a_run_compiles(capsys, monkeypatch,
                                                                     cgroup_v2):
    from profiler.record import cgroup
    monkeypatch.setattr(cgroup, "available", lambda: cgroup_v2)
    assert cli.main(["record", "--print-program", "--", "ls"]) == 0
    out = capsys.readouterr().out
    assert f"#define FILTER_CGROUP {int(cgroup_v2)}" in out
    assert f"#define FILTER_TGID {int(not cgroup_v2)}" in out
