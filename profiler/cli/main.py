"""`profiler record | report | list-events`: argv -> options, errors -> one message.

Only `main` catches ProfilerError (and the renderer's own errors); a known
failure prints its message and remedy, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import Iterator, Sequence

from profiler import options as opt
from profiler.cli import PROG
from profiler.cli import endofrun
from profiler.errors import OutputError, ProfilerError, UsageError



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


def _bounded(low: float, high: float):
    positive = _positive(float)

    def parse(text: str) -> float:
        value = positive(text)
        if not low <= value <= high:  # also refuses inf
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}: {text!r}")
        return value
    return parse


def _call_graph(text: str) -> tuple[opt.CallGraph, int]:
    """perf's spelling: fp, dwarf or dwarf,SIZE (bytes of stack per sample)."""
    mode, comma, size = text.partition(",")
    try:
        graph = opt.CallGraph(mode)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not fp, dwarf or dwarf,SIZE: {text!r}") from None
    if not comma:
        return graph, opt.DEFAULT_STACK_COPY
    if graph is not opt.CallGraph.DWARF:
        raise argparse.ArgumentTypeError(f"only dwarf takes a size: {text!r}")
    try:
        value = int(size, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {size!r}") from None
    if not 8 <= value <= opt.MAX_STACK_COPY:
        raise argparse.ArgumentTypeError(
            f"the stack copy must be 8 to {opt.MAX_STACK_COPY} bytes: {size!r}")
    return graph, (value + 7) // 8 * 8  # whole words, as perf rounds it


def _add_output_args(p: argparse.ArgumentParser) -> None:
    from profiler.export import extensions_help
    p.add_argument("-o", "--output", default=None, metavar="OUT",
                   help=f"output file; the extension picks the format ({extensions_help()}; "
                        ".json is the raw profile); '-' = folded stacks on stdout "
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
    p.add_argument("--no-inline", action="store_true",
                   help="no frames for inlined calls: only the function they were inlined "
                        "into (by default DWARF debug info adds them, marked _[i])")
    p.add_argument("--srcline", action="store_true",
                   help="name frames 'function (file:line)' where debug info has lines: the "
                        "call's line for callers, the sampled line for the leaf")


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
    rec.add_argument("--call-graph", type=_call_graph, metavar="fp|dwarf[,SIZE]",
                     help="how user stacks are walked: 'dwarf' copies SIZE bytes of user "
                          f"stack per sample (default {opt.DEFAULT_STACK_COPY}) and unwinds them "
                          "with the binaries' CFI, so code built without frame pointers "
                          "(libc, interpreters, most distribution software) keeps its "
                          "callers; 'fp' follows frame pointers in the kernel, cheaper but cut "
                          "short by such code. Default: dwarf for -p, -t and a command, fp for "
                          "the whole system (whose copies would cost every CPU)")
    rec.add_argument("--stack-storage-size", type=_positive(int),
                     default=opt.DEFAULT_STACK_STORAGE, metavar="N",
                     help="distinct stacks held in the kernel between drains "
                          f"(default {opt.DEFAULT_STACK_STORAGE})")
    rec.add_argument("--max-stacks", type=_positive(int), default=opt.DEFAULT_MAX_STACKS,
                     metavar="N",
                     help="distinct stacks the run keeps, which bounds its memory (some "
                          "0.4 KB a stack with fp, 0.55 KB with dwarf); stacks first seen after "
                          "that are drawn as one [stack limit] frame under their process, and "
                          f"counted (default {opt.DEFAULT_MAX_STACKS})")
    rec.add_argument("--drain-interval", type=_bounded(0.01, 3600), metavar="SECONDS",
                     default=opt.DEFAULT_DRAIN_INTERVAL,
                     help="longest time between two drains of the kernel's maps; drains "
                          "come sooner by themselves when the stacks would fill them "
                          f"(default {opt.DEFAULT_DRAIN_INTERVAL:g})")
    rec.add_argument("--print-program", action="store_true",
                     help="print the BPF program as compiled (with its -D flags) and exit")
    _add_output_args(rec)
    _add_render_args(rec)

    rep = sub.add_parser("report", help="turn a saved profile (raw .json, pprof, speedscope, "
                                        "folded) into SVG, folded, pprof or speedscope")
    rep.add_argument("input", metavar="PROFILE",
                     help="a raw profile (record -o x.json), pprof (.pb.gz or .pb, from any "
                          "producer), speedscope JSON or folded stacks")
    rep.add_argument("--sample-index", type=_sample_index, metavar="N|NAME",
                     help="which sample type of a pprof file to count (default: its default "
                          "type, else the last, as go tool pprof does)")
    _add_output_args(rep)
    _add_render_args(rep)

    sub.add_parser("list-events", help="print the events this machine can sample on")
    try:
        from profiler.cli.compare import add_compare_parser
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
        max_stacks=ns.max_stacks,
        drain_interval=ns.drain_interval, show_progress=not ns.quiet and sys.stderr.isatty(),
        print_program=ns.print_program,
        call_graph=ns.call_graph[0] if ns.call_graph else None,
        stack_copy=ns.call_graph[1] if ns.call_graph else opt.DEFAULT_STACK_COPY)


def _grouping(ns) -> opt.Grouping:
    return opt.Grouping.THREAD if ns.per_thread else \
        opt.Grouping.PROCESS if ns.per_pid else opt.Grouping.COMM


def output_options(ns: argparse.Namespace) -> opt.OutputOptions:
    path = ns.output or opt.DEFAULT_OUTPUT
    if ns.format:
        fmt = opt.OutputFormat(ns.format)
    else:
        from profiler.export import extensions_help, format_for_path
        fmt = format_for_path(path)
        if fmt is None:
            raise UsageError(f"cannot tell the output format of {path!r} from its extension",
                             f"use one of {extensions_help()}, or give --format")
    defaults = opt.SymbolizeOptions()
    symbolize = opt.SymbolizeOptions(
        demangle=not ns.no_demangle, inline=not ns.no_inline, srcline=ns.srcline,
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
        from profiler.record import cgroup
        from profiler.record.bpf.config import defines, program_text
        by_cgroup = options.target.kind is opt.TargetKind.COMMAND and cgroup.available()
        _write_stdout(program_text(defines(options, by_cgroup)))
        return 0
    out = output_options(ns)
    render = _render_factory(ns) if out.format is opt.OutputFormat.SVG else None
    from profiler.record.bpf.compiler import check_privileges
    from profiler.export.write import check_writable, rescue_places
    check_privileges()
    check_writable(out.path)  # now: a recording must not end in a failed write
    places = rescue_places(out.path)  # absolute, now: the cwd may vanish during the run
    from profiler.record.recorder import record
    recording = record(options, _progress_printer() if options.show_progress else None)
    try:
        if options.show_progress:
            sys.stderr.write("\n")
        with _interrupt_on_sigterm():
            folded = _write(recording.profile, out, render, recording.files.path_for)
    except BrokenPipeError:  # `-o - | head`: the reader wanted no more
        raise
    except BaseException as err:  # a known failure, Ctrl-C or a bug: keep the recording
        _rescue(recording.profile, out.path, err, places)
        raise
    finally:
        recording.close()
    endofrun.warn([*recording.files.warnings, *(folded.meta.warnings if folded else ())])
    if not ns.quiet:
        endofrun.summary(recording.profile, out, folded)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM while the output was written."""


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """While the output is written, SIGTERM interrupts as Ctrl-C does (and
    the recording is then saved as a raw profile), rather than killing the
    process with the recording unsaved."""
    def interrupt(_signum, _frame):
        raise Terminated

    saved = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)


def _rescue(profile, path: str, err: BaseException, places: tuple[str, ...]) -> None:
    """Save the recording as a raw profile and say where: in the error's
    remedy for a known failure (printed next), else on stderr now."""
    from profiler.export.write import rescue
    signals = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # a second Ctrl-C waits
    try:
        saved = rescue(profile, path, places)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    if saved:
        target = path if path == "-" or os.path.isabs(path) or not places else \
            os.path.join(places[0], os.path.basename(path))
        text = f"the recording is saved in {saved}: '{PROG} report {saved} -o {target}' writes it"
    else:
        text = "no directory would take the raw recording: it is lost"
    if isinstance(err, ProfilerError):
        err.remedy = f"{err.remedy}; {text}" if err.remedy else text
    else:
        why = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        print(f"{PROG}: writing {'stdout' if path == '-' else path} {why}; {text}",
              file=sys.stderr)


def cmd_report(ns: argparse.Namespace) -> int:
    from profiler.export.inputs import read_input
    out = output_options(ns)
    render = _render_factory(ns) if out.format is opt.OutputFormat.SVG else None
    given = read_input(ns.input, sample_type=ns.sample_index)
    raw = given.raw
    if out.grouping is opt.Grouping.THREAD and not (raw.info.per_thread if raw else
                                                    any(s.tid for s in given.profile.samples)):
        raise UsageError(f"{ns.input} was recorded without --per-thread: it has no thread ids",
                         "use --per-pid, or record again with --per-thread")
    if raw is None and out.format is opt.OutputFormat.RAW:
        raise UsageError(f"{ns.input} is a {given.kind} file: only a recording of this profiler "
                         "can be written as a raw profile", "choose another output format")
    written = _write(raw, out, render, None, given.profile)
    endofrun.warn(written.meta.warnings if written else ())
    if not ns.quiet:
        endofrun.summary(raw, out, written)
    return 0


def _sample_index(text: str) -> str | int:
    """--sample-index: a sample type's number or its name (pprof's -sample_index)."""
    return int(text) if text.isdigit() else text


def _write(raw, out, render, path_for, profile=None):
    from profiler.export.write import write_output
    return write_output(raw, out.path, out.format, out.grouping, render, path_for,
                        out.symbolize, profile=profile)


def cmd_list_events() -> int:
    """The events the kernel opens for sampling here, asked one by one."""
    import errno
    from profiler.record import events
    from profiler.errors import NotPermittedError, UnsupportedEventError
    from profiler.record.cpus import online_cpus
    answers = events.supported_events(opt.Sampling(), online_cpus()[0])
    working = [e for e, failure in answers if failure is None]
    if not working:
        if any(f is not None and f.errno in (errno.EACCES, errno.EPERM) for _e, f in answers):
            raise NotPermittedError("the kernel lets this user open no perf event for sampling",
                                    "run as root (or grant CAP_PERFMON)")
        raise UnsupportedEventError("the kernel opens no perf event for sampling here",
                                    "check that perf events are enabled in this kernel")
    kinds = {events.TYPE_HARDWARE: "hardware event", events.TYPE_SOFTWARE: "software event",
             events.TYPE_HW_CACHE: "hardware cache event"}
    lines = []
    for event in working:
        kind = kinds.get(event.type) or f"PMU event ({event.name.split('/')[0]})"
        lines.append(f"{event.name:32} {kind}\n")
    if any(e.type == events.TYPE_HARDWARE for e in working):  # a core PMU answers
        lines.append(f"{'rNNNN':32} raw PMU event (hex code of this CPU's PMU)\n")
    _write_stdout("".join(lines))
    return 0


def _write_stdout(text: str) -> None:
    """All of `text` on standard output; OutputError if it cannot be written."""
    from flamegraph.errors import WriteError
    from flamegraph.output import write_all
    try:
        sys.stdout.flush()
        write_all(sys.stdout.buffer, text.encode())
    except WriteError as err:
        raise OutputError(str(err), err.remedy) from None


def _flushed(status: int) -> int:
    """Standard output written out now: a failure is then one message here,
    not a traceback from the interpreter's flush at exit."""
    from flamegraph.output import discard_output
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        discard_output(sys.stdout)
        raise OutputError(f"cannot write standard output: {err.strerror or err}",
                          "make room on the device, or write to a file with -o") from None
    return status


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
            return _flushed(cmd_record(ns, command))
        if command:
            raise UsageError(f"'{ns.command}' takes no command after --")
        if ns.command == "report":
            return _flushed(cmd_report(ns))
        if ns.command == "list-events":
            return _flushed(cmd_list_events())
        return _flushed(ns.run(ns))
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
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130


def main_entry() -> None:
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    main_entry()
