"""What a run says about itself (subtitle, notes, how the command ended), and
how the output is guarded: checked before recording, rescued after."""
import dataclasses
import json
import os
import xml.etree.ElementTree as ET

import pytest

from profiler.cli import main as cli
from profiler.errors import OutputError
from profiler.model.raw import RawProfile, describe_exit
from profiler.options import Grouping, OutputFormat
from profiler.export.write import check_writable, rescue, write_output
from profiler.symbolize.build import build_profile
from profiler.symbolize.summary import NO_SAMPLES
from profiler.record.recorder import FILL_HIGH, FILL_LOW, SHORTEST_DRAIN, next_drain_interval
from test_profiler_model import profile


def test_exit_codes_in_words():
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(-200) == "killed by signal 200"


def test_subtitle_names_losses_cut_stacks_lost_notices_and_the_commands_end():
    p = profile(stats={"samples": 8, "lost_stack_store_full": 1, "lost_counts_map_full": 0,
                       "kernel_walk_errors": 0, "process_notices_lost": 2})
    p = dataclasses.replace(p, info=dataclasses.replace(p.info, max_depth=2, command_status=-15,
                                                        command_stopped=True))
    subtitle = build_profile(p).meta.subtitle
    assert subtitle.startswith("8 samples, 2 lost (25.00%)")
    assert "samples with stacks cut at 2 frames" in subtitle
    assert "2 new-process notices lost" in subtitle
    assert subtitle.endswith("command killed by SIGTERM (still running when the run ended: "
                             "stopped by the profiler)")


def test_older_raw_profiles_without_new_fields_still_load():
    doc = json.loads(profile().to_json())
    del doc["info"]["command_stopped"]
    assert RawProfile.from_json(json.dumps(doc)).info.command_stopped is False


def test_a_run_without_samples_draws_its_title_and_subtitle(tmp_path):
    p = dataclasses.replace(profile(), counts=(), stats={"samples": 0})
    out = tmp_path / "empty.svg"
    write_output(p, str(out), OutputFormat.SVG, Grouping.COMM)
    texts = {t.get("id"): t.text for t in ET.parse(out).getroot()
             if t.tag.endswith("text")}
    assert texts["title"].startswith("PID 5: cpu-clock at 99 Hz")
    assert texts["subtitle"].startswith("0 samples, 0 lost")
    assert NO_SAMPLES in texts.values()


def test_unwritable_outputs_are_refused_before_recording(tmp_path):
    check_writable("-")
    check_writable(str(tmp_path / "ok.svg"))
    for bad in (tmp_path / "missing" / "x.svg", tmp_path):
        with pytest.raises(OutputError):
            check_writable(str(bad))


def test_rescue_saves_a_raw_profile_report_can_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile()
    saved = rescue(p, str(tmp_path / "gone" / "out.svg"))  # its directory is missing
    assert saved is not None and os.path.dirname(saved) == str(tmp_path)
    assert os.path.basename(saved).startswith("out.") and saved.endswith(".raw.json")
    assert RawProfile.from_json(open(saved).read()) == p


def test_report_per_thread_needs_thread_ids(tmp_path, capsys):
    raw = tmp_path / "p.json"
    raw.write_text(profile().to_json())
    assert cli.main(["report", str(raw), "--per-thread", "-o", str(tmp_path / "x.folded")]) == 2
    err = capsys.readouterr().err
    assert "recorded without --per-thread" in err and "Traceback" not in err
    assert not (tmp_path / "x.folded").exists()


@pytest.mark.parametrize("fill,expected", [
    (0.5, 0.5), (FILL_HIGH * 1.01, 0.5), (FILL_HIGH, 1.0), (FILL_LOW, 1.0), (0.0, 1.0)])
def test_drains_come_sooner_as_the_stack_maps_fill(fill, expected):
    assert next_drain_interval(1.0, fill, longest=1.0) == expected


def test_drain_interval_stays_between_the_shortest_and_the_longest():
    interval = 1.0
    for _ in range(20):
        interval = next_drain_interval(interval, 0.9, longest=1.0)
    assert interval == SHORTEST_DRAIN
    for _ in range(20):
        interval = next_drain_interval(interval, 0.0, longest=1.0)
    assert interval == 1.0
    assert next_drain_interval(0.05, 0.9, longest=0.05) == 0.05  # a user's shorter longest
