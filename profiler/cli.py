"""`profiler record | report | list-events`: argv -> options, errors -> one message.

Only `main` catches ProfilerError (and the renderer's own errors); a known
failure prints its message and remedy, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from profiler import options as opt
from profiler.errors import OutputError, ProfilerError, UsageError

PROG = "profiler"


def _id_list(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}")
    if not ids or any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"not a list of non-negative numbers: {text!r}")
    return ids


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return parse


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=None, metavar="OUT",
                   help="output file; the extension picks the format (.svg, .folded/.txt, "
                        ".json = raw profile); '-' = folded stacks on stdout "
                        f"(default {opt.DEFAULT_OUTPUT})")
    p.add_argument("--format", choices=[f.value for f in opt.OutputFormat],
                   help="output format, overriding the extension")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-pid", action="store_true", help="first frame comm-PID")
    group.add_argument("--per-thread", action="store_true", help="first frame comm-PID/TID")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    p.add_argument("--no-demangle", action="store_true",
                   help="keep C++ and Rust symbol names as the binary spells them")
    p.add_argument("--debug-dir", action="append", metavar="DIR",
                   help="where separate debug files live (.build-id/ and debuglink "
                        f"trees; repeatable; default {':'.join(opt.DEFAULT_DEBUG_DIRS)})")


def _add_render_args(p: argparse.ArgumentParser) -> None:
    from flamegraph.cli import add_render_arguments
    add_render_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Linux stack profiler (BPF).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rec = sub.add_parser("record", help="sample stacks and write a flame graph",
                         usage="%(prog)s [options] [-- COMMAND [ARGS...]]")
    target = rec.add_mutually_exclusive_group()
    target.add_argument("-p", "--pid", type=_id_list, metavar="PID[,PID...]",
                        help="these processes (all their threads, also new ones)")
    target.add_argument("-t", "--tid", type=_id_list, metavar="TID[,TID...]",
                        help="these threads only")
    rate = rec.add_mutually_exclusive_group()
    rate.add_argument("-F", "--frequency", type=_positive(int), metavar="HZ",
                      help=f"samples per second per CPU (default {opt.DEFAULT_FREQUENCY})")
    rate.add_argument("-c", "--count", type=_positive(int), metavar="PERIOD",
                      help="one sample every PERIOD events")
    rec.add_argument("-e", "--event", default="cpu-clock",
                     help="event to sample on (default cpu-clock; see list-events)")
    rec.add_argument("-d", "--duration", type=_positive(float), metavar="SECONDS",
                     help="stop after this long (default: Ctrl-C, SIGTERM or command exit)")
    rec.add_argument("-C", "--cpu", type=_id_list, metavar="CPU[,CPU...]",
                     help="only these CPUs (default all online)")
    sides = rec.add_mutually_exclusive_group()
    sides.add_argument("-U", "--user-stacks-only", action="store_true")
    sides.add_argument("-K", "--kernel-stacks-only", action="store_true")
    rec.add_argument("--include-idle", action="store_true", help="keep idle-task samples")
    rec.add_argument("--stack-storage-size", type=_positive(int),
                     default=opt.DEFAULT_STACK_STORAGE, metavar="N",
                     help="distinct stacks held in the kernel between drains "
                          f"(default {opt.DEFAULT_STACK_STORAGE})")
    rec.add_argument("--print-program", action="store_true",
                     help="print the BPF program as compiled (with its -D flags) and exit")
    _add_output_args(rec)
    _add_render_args(rec)

    rep = sub.add_parser("report", help="turn a saved raw profile (.json) into folded or SVG")
    rep.add_argument("raw", metavar="RAW.json")
    _add_output_args(rep)
    _add_render_args(rep)

    sub.add_parser("list-events", help="print the events this machine can sample on")
    try:
        from profiler.compare_cli import add_compare_parser
    except ImportError:  # the compare command is optional
        pass
    else:
        add_compare_parser(sub)
    return parser


# ------------------------------------------------------------------ translate


def record_options(ns: argparse.Namespace, command: tuple[str, ...]) -> opt.RecordOptions:
    if command and (ns.pid or ns.tid):
        raise UsageError("give either -p/-t or a command after --, not both")
    if ns.pid:
        target = opt.Target(kind=opt.TargetKind.PIDS, ids=ns.pid)
    elif ns.tid:
        target = opt.Target(kind=opt.TargetKind.TIDS, ids=ns.tid)
    elif command:
        target = opt.Target(kind=opt.TargetKind.COMMAND, command=command)
    else:
        target = opt.Target()
    sampling = opt.Sampling(frequency=None, period=ns.count) if ns.count else \
        opt.Sampling(frequency=ns.frequency or opt.DEFAULT_FREQUENCY)
    sides = opt.StackSides.USER if ns.user_stacks_only else \
        opt.StackSides.KERNEL if ns.kernel_stacks_only else opt.StackSides.BOTH
    return opt.RecordOptions(
        target=target, event=ns.event, sampling=sampling, duration=ns.duration,
        cpus=tuple(ns.cpu or ()), sides=sides, include_idle=ns.include_idle,
        grouping=_grouping(ns), stack_storage_size=ns.stack_storage_size,
        show_progress=not ns.quiet and sys.stderr.isatty(),
        print_program=ns.print_program)


def _grouping(ns) -> opt.Grouping:
    return opt.Grouping.THREAD if ns.per_thread else \
        opt.Grouping.PROCESS if ns.per_pid else opt.Grouping.COMM


def output_options(ns: argparse.Namespace) -> opt.OutputOptions:
    path = ns.output or opt.DEFAULT_OUTPUT
    if ns.format:
        fmt = opt.OutputFormat(ns.format)
    else:
        fmt = opt.format_for_path(path)
        if fmt is None:
            raise UsageError(f"cannot tell the output format of {path!r} from its extension",
                             "use .svg, .folded, .txt or .json, or give --format")
    defaults = opt.SymbolizeOptions()
    symbolize = opt.SymbolizeOptions(
        demangle=not ns.no_demangle,
        debug_dirs=tuple(os.path.abspath(d) for d in ns.debug_dir) if ns.debug_dir
        else defaults.debug_dirs)
    return opt.OutputOptions(path=path, format=fmt, grouping=_grouping(ns), symbolize=symbolize)


def _render_factory(ns: argparse.Namespace):
    from flamegraph.cli import options_from_args
    options_from_args(ns)  # reject bad flame-graph options before recording

    def make(title: str, subtitle: str):
        return options_from_args(ns, title=ns.title if ns.title is not None else title,
                                 subtitle=ns.subtitle or subtitle)
    return make


# ------------------------------------------------------------------ commands


def _progress_printer():
    def show(p) -> None:
        left = "" if p.remaining is None else f", {p.remaining:.0f} s left"
        sys.stderr.write(f"\rrecording: {p.elapsed:.0f} s{left}, {p.samples} samples   ")
        sys.stderr.flush()
    return show


def cmd_record(ns: argparse.Namespace, command: tuple[str, ...]) -> int:
    options = record_options(ns, command)
    if options.print_program:
        from profiler.bpf_program import defines, program_text
        sys.stdout.write(program_text(defines(options)))
        return 0
    out = output_options(ns)
    render = _render_factory(ns) if out.format is opt.OutputFormat.SVG else None
    from profiler.recorder import record
    recording = record(options, _progress_printer() if options.show_progress else None)
    try:
        if options.show_progress:
            sys.stderr.write("\n")
        folded = _write(recording.profile, out, render, recording.files.path_for)
    finally:
        recording.close()
    _warn([*recording.files.warnings, *(folded.warnings if folded else ())])
    if not ns.quiet:
        _summary(recording.profile, out, folded)
    return 0


def cmd_report(ns: argparse.Namespace) -> int:
    from profiler.model import RawProfile
    out = output_options(ns)
    render = _render_factory(ns) if out.format is opt.OutputFormat.SVG else None
    try:
        with open(ns.raw, encoding="utf-8") as f:
            profile = RawProfile.from_json(f.read())
    except OSError as err:
        raise OutputError(f"cannot read {ns.raw}: {err.strerror}",
                          "give a raw profile written by 'profiler record -o FILE.json'") from None
    folded = _write(profile, out, render, None)
    _warn(folded.warnings if folded else ())
    if not ns.quiet:
        _summary(profile, out, folded)
    return 0


def _write(profile, out, render, path_for):
    from profiler.output import write_output
    return write_output(profile, out.path, out.format, out.grouping, render, path_for,
                        out.symbolize)


def _warn(warnings) -> None:
    """Whole-run problems, each once, even under -q: they explain the output."""
    for warning in dict.fromkeys(warnings):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def _summary(profile, out, folded) -> None:
    info = profile.info
    where = "stdout" if out.path == "-" else out.path
    if folded is not None:
        print(f"{PROG}: {folded.losses.describe()}", file=sys.stderr)
        if not folded.lines:
            print(f"{PROG}: no samples were recorded (an idle target? try a higher -F "
                  "or a longer -d)", file=sys.stderr)
        if folded.unresolved_frames:
            print(f"{PROG}: {folded.unresolved_frames} distinct frames could not be named "
                  "(shown as module+0xOFFSET)", file=sys.stderr)
    else:
        from profiler.output import losses_of
        print(f"{PROG}: {losses_of(profile).describe()}", file=sys.stderr)
    if info.command_status is not None:
        print(f"{PROG}: command exited with status {info.command_status}", file=sys.stderr)
    exited = [p for p in profile.processes.values() if p.exited and not p.kernel_thread]
    if info.stopped_by == "targets exited":
        print(f"{PROG}: every target exited; the run ended after {info.duration:.1f} s "
              "and keeps their samples", file=sys.stderr)
    elif exited and info.stopped_by != "command exited":
        print(f"{PROG}: {len(exited)} profiled process(es) exited during the run; "
              "their samples are kept", file=sys.stderr)
    print(f"{PROG}: wrote {where}", file=sys.stderr)


def cmd_list_events() -> int:
    from profiler import events
    from profiler.recorder import online_cpus
    names = events.supported_events(opt.Sampling(), online_cpus()[0])
    if not names:
        print(f"{PROG}: no event could be opened (are you root?)", file=sys.stderr)
        return 1
    for name in names:
        ev = events.resolve_event(name)
        kind = {0: "hardware", 1: "software", 3: "hardware cache"}.get(ev.type, str(ev.type))
        print(f"{name:32} {kind} event")
    print("rNNNN                            raw PMU event (hex code; needs a PMU)")
    return 0


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    command: tuple[str, ...] = ()
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], tuple(argv[i + 1:])
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    from flamegraph.errors import FlameGraphError
    try:
        if ns.command == "record":
            return cmd_record(ns, command)
        if command:
            raise UsageError(f"'{ns.command}' takes no command after --")
        if ns.command == "report":
            return cmd_report(ns)
        if ns.command == "list-events":
            return cmd_list_events()
        return ns.run(ns)
    except ProfilerError as err:
        print(f"{PROG}: error: {err.message}", file=sys.stderr)
        if err.remedy:
            print(f"{PROG}: remedy: {err.remedy}", file=sys.stderr)
        return err.exit_status
    except FlameGraphError as err:
        print(f"{PROG}: error: {err.user_message()}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        from flamegraph.output import quiet_broken_pipe
        quiet_broken_pipe(sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


def main_entry() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    main_entry()
