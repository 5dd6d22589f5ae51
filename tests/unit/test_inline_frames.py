"""Inline frames and source lines from the model to folded stacks, the
flame graph's tooltips and the CLI's options (inline data, no DWARF)."""
from __future__ import annotations

from flamegraph.api import render
from flamegraph.options import Options
from profiler.cli import main as cli
from profiler.export import folded, svg
from profiler.model.maps import MapEntry
from profiler.model.profile import (Function, Line, Location, Mapping, Profile, Sample,
                                    ValueType)
from profiler.options import SymbolizeOptions
from profiler.symbolize import build, lines
from profiler.symbolize.symbolizer import Frame


def inline_profile() -> Profile:
    """main calls work (line 55); in work (line 37) outer_round was inlined,
    into which middle_step (line 23), into which leaf_mix (line 17); the
    sampled address is leaf_mix's line 9. A second sample hits work's own
    line 40."""
    functions = {
        1: Function(id=1, name="main", system_name="main", filename="/src/a.c", start_line=50),
        2: Function(id=2, name="work", system_name="work", filename="/src/a.c", start_line=35),
        3: Function(id=3, name="outer_round", system_name="outer_round", filename="/src/a.c",
                    start_line=21),
        4: Function(id=4, name="middle_step", system_name="middle_step", filename="/src/a.c",
                    start_line=14),
        5: Function(id=5, name="leaf_mix", system_name="leaf_mix", filename="/src/h.h",
                    start_line=8),
    }
    locations = {
        1: Location(id=1, mapping_id=1, address=0x1000, lines=(Line(function_id=1, line=55),)),
        2: Location(id=2, mapping_id=1, address=0x1100, lines=(
            Line(function_id=5, line=9), Line(function_id=4, line=17),
            Line(function_id=3, line=23), Line(function_id=2, line=37))),
        3: Location(id=3, mapping_id=1, address=0x1200, lines=(Line(function_id=2, line=40),)),
    }
    mappings = {1: Mapping(id=1, path="/bin/a", has_functions=True, has_filenames=True,
                           has_line_numbers=True, has_inline_frames=True)}
    samples = (Sample(locations=(2, 1), values=(3,), pid=1, comm="a"),
               Sample(locations=(3, 1), values=(1,), pid=1, comm="a"))
    return Profile(sample_types=(ValueType("samples", "count"),), samples=samples,
                   locations=locations, functions=functions, mappings=mappings,
                   default_sample_type="samples")


def test_inlined_callees_are_frames_of_their_own():
    assert folded.fold(inline_profile()) == [
        "a;main;work 1",
        "a;main;work;outer_round_[i];middle_step_[i];leaf_mix_[i] 3"]


def test_srcline_names_call_sites_for_callers_and_the_sampled_line_for_the_leaf():
    assert folded.fold(inline_profile(), srcline=True) == [
        "a;main (a.c:55);work (a.c:37);outer_round (a.c:23)_[i];middle_step (a.c:17)_[i];"
        "leaf_mix (h.h:9)_[i] 3",
        "a;main (a.c:55);work (a.c:40) 1"]


def test_frame_sources_pick_the_most_sampled_line():
    assert folded.frame_sources(inline_profile()) == {
        "leaf_mix_[i]": "/src/h.h:9", "main": "/src/a.c:55",
        "middle_step_[i]": "/src/a.c:17", "outer_round_[i]": "/src/a.c:23",
        "work": "/src/a.c:37"}


def test_svg_tooltip_shows_the_source_and_keeps_the_name_the_script_reads():
    picture = svg.write(inline_profile()).decode()
    assert "<title>leaf_mix (3 samples, 75.00%)</title><rect" in picture
    assert '<title>leaf_mix (3 samples, 75.00%)\n/src/h.h:9</title></rect>' in picture


def test_no_sources_draws_the_same_picture():
    lines_in = ["a;main;work 1", "a;main;work;leaf_mix_[i] 3"]
    plain = render(lines_in, Options()).svg
    assert render(lines_in, Options(sources={})).svg == plain
    assert render(lines_in, Options(sources={"other": "x.c:1"})).svg == plain


def test_cli_inline_and_srcline_flags():
    for command in (["record"], ["report", "x.json"]):
        ns = cli.build_parser().parse_args(command)
        assert cli.output_options(ns).symbolize == SymbolizeOptions()
        ns = cli.build_parser().parse_args([*command, "--no-inline", "--srcline"])
        got = cli.output_options(ns).symbolize
        assert (got.inline, got.srcline) == (False, True)


# ------------------------------------------------------------------ build.py


class FakeSymbolizer:
    """What build.py asks the symbolizer, for one program at 0x400000 whose
    address 0x401100 is in leaf_mix inlined twice into work."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.entry = MapEntry(start=0x400000, end=0x500000, perms="r-xp", offset=0, dev="08:01",
                              inode=7, path="/bin/a")
        self.obj = object()

    def user_frame(self, pid, address, leaf):
        return Frame({0x401100: "work", 0x401010: "main"}[address], True, True)

    def entry_of(self, pid, address, leaf):
        return self.entry

    def build_id_of(self, pid, entry):
        return b"\x01\x02"

    def source_of(self, pid, address, leaf):
        return self.obj, address - 0x400000 - (0 if leaf else 1)

    def source_lines(self, wanted):
        key = id(self.obj)
        chains = {0x1100: (lines.SourceFrame("leaf_mix", "/src/h.h", 9, 3, 8),
                           lines.SourceFrame("middle_step", "/src/a.c", 17, 0, 14),
                           lines.SourceFrame("work", "/src/a.c", 37, 0, 35)),
                  0x100f: (lines.SourceFrame("main", "/src/a.c", 55, 0, 50),)}
        return {(key, a): chains[a] for a in wanted[key][1]}

    def demangle_names(self, names):
        return {}


def _built(options: SymbolizeOptions) -> Profile:
    b = build._Builder(FakeSymbolizer(), options)
    leaf, caller = b.user(1, 0x401100, True), b.user(1, 0x401010, False)
    samples = [Sample(locations=(leaf, caller), values=(1,), pid=1, comm="a")]

    class Info:
        started, duration, frequency, period = 0.0, 1.0, 99, None
    raw = type("Raw", (), {"info": Info})()
    return b.finish(build._Values((ValueType("samples", "count"),), (1,)), samples, raw)


def test_build_gives_every_inline_level_a_line_and_functions_their_start():
    profile = _built(SymbolizeOptions())
    assert folded.fold(profile) == ["a;main;work;middle_step_[i];leaf_mix_[i] 1"]
    leaf = profile.locations[1]
    names = [(profile.functions[l.function_id].name, l.line, l.column) for l in leaf.lines]
    assert names == [("leaf_mix", 9, 3), ("middle_step", 17, 0), ("work", 37, 0)]
    work = profile.functions[leaf.lines[-1].function_id]
    assert (work.filename, work.start_line) == ("/src/a.c", 35)
    m = profile.mappings[1]
    assert (m.has_filenames, m.has_line_numbers, m.has_inline_frames) == (True, True, True)


def test_no_inline_keeps_the_outermost_function_with_its_line():
    profile = _built(SymbolizeOptions(inline=False))
    assert folded.fold(profile) == ["a;main;work 1"]
    leaf = profile.locations[1]
    assert [(profile.functions[l.function_id].name, l.line) for l in leaf.lines] == \
        [("work", 37)]
    assert profile.mappings[1].has_inline_frames is False
    assert profile.mappings[1].has_line_numbers is True
