"""`profiler compare BASELINE CURRENT`: the CI gate's command line.

Translates argv into CompareOptions, reads the two profiles, writes the
requested reports. Exit status: 0 pass, 1 a regression beyond --fail-on,
2 unusable input.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

from flamegraph.folded import decode_lines
from flamegraph.options import Options
from flamegraph.output import write_atomically
from profiler.compare.analysis import (SIGNIFICANCE, CompareOptions, Comparison, Metric, Profile,
                              compare, differential_lines, load_profile)
from profiler.compare.report import to_json, to_markdown
from profiler.errors import ProfilerError

EXIT_REGRESSION = 1


class CompareInputError(ProfilerError):
    """A profile cannot be read or holds no samples."""

    exit_status = 2


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    d = CompareOptions()
    p = subparsers.add_parser(
        "compare", help="compare two profiles; gate a build on regressions",
        description="Compare two profiles (folded, raw JSON, pprof or speedscope) function "
                    "by function. "
                    "Exit 0 pass, 1 a significant regression beyond --fail-on, 2 bad input.")
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("current", metavar="CURRENT")
    p.add_argument("-o", "--output", metavar="SVG", help="differential flame graph (CURRENT's shape)")
    p.add_argument("--json", metavar="FILE", help="full report as JSON")
    p.add_argument("--markdown", metavar="FILE", help="summary table as Markdown")
    p.add_argument("--fail-on", type=float, metavar="PCT",
                   help="exit 1 if a function's share grew by more than PCT percentage points "
                        f"(and p < {SIGNIFICANCE:g})")
    p.add_argument("--metric", choices=[m.value for m in Metric], default=d.metric.value,
                   help="share measured: total (inclusive, default) or self")
    p.add_argument("--no-normalize", action="store_true",
                   help="measure both profiles against the baseline's total sample count")
    p.add_argument("--strip-hex", action="store_true", help="replace hex addresses with 0x...")
    p.add_argument("--min-samples", type=int, default=d.min_samples, metavar="N",
                   help="ignore functions with fewer samples than this in both profiles")
    p.add_argument("--top", type=int, default=d.top, metavar="N",
                   help=f"rows per table in the Markdown summary (default {d.top})")
    p.add_argument("--sample-index", metavar="N|NAME",
                   type=lambda t: int(t) if t.isdigit() else t,
                   help="which sample type of a pprof file to count (default: its sample "
                        "counts, which the significance test needs; else as go tool pprof: "
                        "its default type, else the last)")
    p.add_argument("--negate", action="store_true",
                   help="draw the baseline's shape (colors still: red = grew)")
    p.set_defaults(run=run_compare)
    return p


def options_from_args(ns: argparse.Namespace) -> CompareOptions:
    if ns.fail_on is not None and not ns.fail_on >= 0:
        raise CompareInputError("--fail-on must be a non-negative number of percentage points")
    if ns.min_samples < 0 or ns.top < 1:
        raise CompareInputError("--min-samples must be >= 0 and --top >= 1")
    return CompareOptions(metric=Metric(ns.metric), normalize=not ns.no_normalize,
                          strip_hex=ns.strip_hex, fail_on=ns.fail_on,
                          min_samples=ns.min_samples, top=ns.top)


def read_profile(path: str, strip_hex: bool, sample_type: str | int | None = None) -> Profile:
    """Any profile `report` reads (raw, pprof, speedscope, folded), as
    folded stacks; folded text is read as flamegraph.pl reads it."""
    from profiler.errors import OutputError
    from profiler.export import inputs
    try:
        data = inputs.read_bytes(path)
        kind = inputs.kind_of(data)
        if kind in ("folded", "binary"):  # read as flamegraph.pl reads any text
            lines = list(decode_lines(data))
        else:
            given = inputs.read_input(path, sample_type=sample_type)
            if sample_type is None and given.profile is not None:
                given = dataclasses.replace(given, profile=_counted(given.profile))
            lines = profile_lines(given)
    except OutputError as err:
        raise CompareInputError(err.message, err.remedy) from None
    profile = load_profile(pathlib.Path(path).name, lines, strip_hex)
    if not profile.total > 0:
        raise CompareInputError(f"{path} holds no valid folded line with samples",
                                "expected lines like 'comm;main;work 42'")
    return profile


def _counted(profile):
    """The profile counting samples when it has a count type: the
    significance test compares sample counts (nanoseconds would make any
    change look certain)."""
    counts = [t for t in profile.sample_types if t.unit == "count"]
    if not counts:
        return profile
    return dataclasses.replace(profile, default_sample_type=counts[0].type)


def profile_lines(given) -> list[str]:
    """A recording symbolized and folded as `profiler report` does; another
    tool's profile folded with its chosen sample type."""
    from profiler.export.folded import fold
    from profiler.symbolize.build import build_profile
    return fold(build_profile(given.raw) if given.raw is not None else given.profile)


def run_compare(ns: argparse.Namespace) -> int:
    options = options_from_args(ns)
    baseline = read_profile(ns.baseline, options.strip_hex, ns.sample_index)
    current = read_profile(ns.current, options.strip_hex, ns.sample_index)
    result = compare(baseline, current, options)
    if ns.output:
        write_atomically(ns.output, differential_svg(result, ns.negate))
    if ns.json:
        write_atomically(ns.json, to_json(result).encode("utf-8"))
    if ns.markdown:
        write_atomically(ns.markdown, to_markdown(result).encode("utf-8"))
    for profile in (baseline, current):
        if profile.ignored_lines:
            print(f"profiler compare: {profile.label}: ignored {profile.ignored_lines} "
                  "line(s) with invalid format", file=sys.stderr)
    print(summary_line(result), file=sys.stderr)
    return EXIT_REGRESSION if result.failed else 0


def differential_svg(result: Comparison, baseline_shape: bool) -> bytes:
    from flamegraph.api import render
    b, c = result.baseline, result.current
    lines = differential_lines(b, c, normalize=result.options.normalize,
                               baseline_shape=baseline_shape)
    shape = b.label if baseline_shape else c.label
    options = Options(title=f"{b.label} \u2192 {c.label}",
                      subtitle=f"shape of {shape}; red: share grew, blue: share shrank",
                      negate=baseline_shape)
    return render(lines, options).svg


def summary_line(result: Comparison) -> str:
    o = result.options
    if result.failed:
        names = ", ".join(f"{c.name} ({c.delta(o.metric):+.2f} pp, p={c.p_value(o.metric):.1g})"
                          for c in result.failed[:10])
        more = f" and {len(result.failed) - 10} more" if len(result.failed) > 10 else ""
        return (f"profiler compare: FAIL: {len(result.failed)} function(s) grew by more than "
                f"{o.fail_on:g} points: {names}{more}")
    if not result.regressions and not result.improvements:
        return "profiler compare: pass: no significant change"
    return (f"profiler compare: pass: {len(result.regressions)} significant increase(s), "
            f"{len(result.improvements)} decrease(s)"
            + (f", none above {o.fail_on:g} points" if o.fail_on is not None else ""))
