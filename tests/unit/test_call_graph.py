"""--call-graph: its spelling, its defaults, the frameless-leaf judgement and
the fp-mode advice, with inline data (the recordings are in tests/system)."""
from __future__ import annotations

import argparse

import pytest

from profiler.cli import main as cli
from profiler.options import CallGraph, RecordOptions, Target, TargetKind
from profiler.model.profile import Function, Line, Location, Mapping, Profile, Sample, ValueType
from profiler.symbolize.summary import early_ends
from profiler.unwind import cfi
from profiler.unwind.frameless import return_address_offset


@pytest.mark.parametrize("text, expected", [
    ("fp", (CallGraph.FP, 16384)),
    ("dwarf", (CallGraph.DWARF, 16384)),
    ("dwarf,8192", (CallGraph.DWARF, 8192)),
    ("dwarf,0x2000", (CallGraph.DWARF, 8192)),
    ("dwarf,100", (CallGraph.DWARF, 104)),  # whole words, as perf rounds it
    ("dwarf,65528", (CallGraph.DWARF, 65528)),
])
def test_call_graph_spelling(text, expected):
    assert cli._call_graph(text) == expected


@pytest.mark.parametrize("text", ["lbr", "fp,4096", "dwarf,", "dwarf,x", "dwarf,0",
                                  "dwarf,65536", "dwarf,-8", ""])
def test_call_graph_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli._call_graph(text)


def test_call_graph_bad_spelling_is_one_message(capsys):
    assert cli.main(["record", "--call-graph", "lbr", "-d", "1"]) == 2
    err = capsys.readouterr().err
    assert "not fp, dwarf or dwarf,SIZE" in err and "Traceback" not in err


def test_defaults_dwarf_for_processes_fp_for_the_system():
    assert RecordOptions().call_graph_used is CallGraph.FP
    for kind, ids, command in ((TargetKind.PIDS, (1,), ()), (TargetKind.TIDS, (1,), ()),
                               (TargetKind.COMMAND, (), ("true",))):
        options = RecordOptions(target=Target(kind=kind, ids=ids, command=command))
        assert options.call_graph_used is CallGraph.DWARF
    forced = RecordOptions(target=Target(kind=TargetKind.PIDS, ids=(1,)),
                           call_graph=CallGraph.FP)
    assert forced.call_graph_used is CallGraph.FP
    ns = cli.build_parser().parse_args(["record", "-p", "1", "--call-graph", "dwarf,4096"])
    options = cli.record_options(ns, ())
    assert (options.call_graph, options.stack_copy) == (CallGraph.DWARF, 4096)


def _row(cfa_reg, cfa_offset, ra_offset=-8, fp_rule=None, expr=b"", signal=False):
    regs = [(16, cfi.Rule(cfi.OFFSET, ra_offset))]
    if fp_rule is not None:
        regs.insert(0, (6, fp_rule))
    return cfi.Row(cfa_reg, cfa_offset, expr, tuple(regs), 16, signal)


def test_frameless_leaf_return_address_from_its_row():
    # Entry of any function, or a leaf that never pushes: RA at [sp].
    assert return_address_offset(_row(7, 8)) == 0 + 1
    # After `push rbp` (prologue) or `push rbx` in a frameless leaf: [sp+8].
    assert return_address_offset(_row(7, 16, fp_rule=cfi.Rule(cfi.OFFSET, -16))) == 8 + 1
    # Frame set up (CFA on rbp): nothing may be added.
    assert return_address_offset(_row(6, 16, fp_rule=cfi.Rule(cfi.OFFSET, -16))) == 0
    # No CFI, an expression CFA (PLT), or a signal trampoline: nothing said.
    assert return_address_offset(None) == 0
    assert return_address_offset(_row(-1, 0, expr=b"\x77\x08")) == 0
    assert return_address_offset(_row(7, 8, signal=True)) == 0
    # A return address rule that is not "saved at CFA+k": nothing said.
    odd = cfi.Row(7, 8, b"", ((16, cfi.Rule(cfi.SAME)),), 16, False)
    assert return_address_offset(odd) == 0


def _profile(stacks):
    """(root-first [(name, mapping path or None)], count) -> a Profile."""
    functions, locations, mappings, samples = {}, {}, {}, []
    for frames, count in stacks:
        ids = []
        for name, path in frames:
            mid = 0
            if path is not None:
                mid = next((m.id for m in mappings.values() if m.path == path), 0) or \
                    len(mappings) + 1
                mappings[mid] = Mapping(id=mid, path=path)
            fid = len(functions) + 1
            functions[fid] = Function(id=fid, name=name)
            lid = len(locations) + 1
            if name.startswith("[unmapped]"):
                locations[lid] = Location(id=lid, label=name, unresolved="unmapped")
            else:
                locations[lid] = Location(id=lid, mapping_id=mid, lines=(Line(function_id=fid),))
            ids.append(lid)
        samples.append(Sample(locations=tuple(reversed(ids)), values=(count,)))
    return Profile(sample_types=(ValueType("samples", "count"),), samples=tuple(samples),
                   locations=locations, functions=functions, mappings=mappings)


LIBC, PY, APP = "/lib/libc.so.6", "/usr/bin/python3.11", "/bin/app"


def test_early_ends_names_where_stacks_ended():
    p = _profile([([("qsort", LIBC), ("main", APP)], 41),
                  ([("[unmapped]+0x99", None), ("eval", PY), ("main", APP)], 55),
                  ([("leaf", APP)], 4),
                  ([("_start", APP), ("main", APP)], 900)])
    assert early_ends(p) == ("10% of user stacks end before reaching their entry frame (ended "
                             "in python3.11 55%, libc.so.6 41%, app 4%): code there has no "
                             "frame pointers; --call-graph dwarf unwinds through it",)


def test_early_ends_quiet_at_five_percent_or_less():
    p = _profile([([("qsort", LIBC)], 5), ([("__libc_start_call_main", LIBC)], 95)])
    assert early_ends(p) == ()


@pytest.mark.parametrize("forced, copy", [("1", 65440), ("0", 65528)])
def test_perf_buffer_output_is_chosen_and_cuts_the_copy_to_one_record(monkeypatch, forced,
                                                                      copy):
    from profiler.record.bpf import config
    monkeypatch.setenv(config.FORCE_PERF_OUTPUT, forced)
    monkeypatch.setattr(config, "_has_ring_buffers", lambda: True)  # this kernel has them
    options = RecordOptions(target=Target(kind=TargetKind.PIDS, ids=(1,)), stack_copy=65528)
    flags = config.defines(options)
    assert flags["OUTPUT_PERF"] == (forced == "1") and flags["STACK_COPY"] == copy
    # A perf record: 8-byte header, u32 size, the 72-byte head and the copy,
    # padded to 8: it must fit the header's 16-bit size field, one word more not.
    record = lambda n: 8 + -(-(4 + 72 + n) // 8) * 8  # noqa: E731
    assert record(config.PERF_MAX_STACK_COPY) <= 0xFFFF < record(config.PERF_MAX_STACK_COPY + 8)


def test_a_kernel_without_ring_buffers_gets_perf_buffers(monkeypatch):
    from profiler.record.bpf import config
    monkeypatch.delenv(config.FORCE_PERF_OUTPUT, raising=False)
    monkeypatch.setattr(config, "_has_ring_buffers", lambda: False)
    assert config.defines(RecordOptions())["OUTPUT_PERF"] == 1


@pytest.mark.parametrize("stack_copy, frequency", [(16384, 999), (65440, 99), (8, 49)])
def test_perf_copy_buffers_hold_two_records_and_wake_within_a_quarter(stack_copy, frequency):
    from profiler.options import Sampling
    from profiler.record.bpf import config
    options = RecordOptions(target=Target(kind=TargetKind.PIDS, ids=(1,)), stack_copy=stack_copy,
                            sampling=Sampling(frequency=frequency))
    flags = {"STACK_COPY": stack_copy, "COPY_RING_PAGES": config.copy_ring_pages(options)}
    pages, wakeup = config.perf_copy_buffer(flags)
    # A whole record as the kernel writes it: perf's 8-byte header, then the
    # raw sample (its u32 size, the 72-byte head, the stack) padded to 8.
    record = 8 + -(-(4 + 72 + stack_copy) // 8) * 8
    assert pages & (pages - 1) == 0 and pages * 4096 >= 2 * record
    assert wakeup >= 1 and wakeup * record <= max(pages * 4096 // 4, record)
