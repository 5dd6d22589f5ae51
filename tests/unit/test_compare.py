"""`profiler compare`: shares, significance, the gate, renames, reports."""
import json
import xml.etree.ElementTree as ET

import pytest

from flamegraph.api import render
from flamegraph.options import Options
from profiler.compare.analysis import (CompareOptions, Metric, compare, differential_lines,
                              function_counts, load_profile, poisson_rate_p,
                              two_proportion_p)
from profiler.compare.report import md_escape, to_json, to_markdown


def profile(label, counts):
    return load_profile(label, [f"{stack} {n}" for stack, n in counts.items()])


def shares(hot, rest, total=10000):
    return {"app;main;hot": total * hot, "app;main;rest": total * rest}


GROWTH = (profile("base", shares(0.10, 0.90)), profile("head", shares(0.30, 0.70)))


def test_a_function_growing_from_10_to_30_percent_fails_the_gate():
    result = compare(*GROWTH, CompareOptions(fail_on=5))
    assert result.verdict == "fail"
    assert [c.name for c in result.failed] == ["hot"]
    hot = result.failed[0]
    assert hot.before.inclusive_pct == pytest.approx(10)
    assert hot.after.inclusive_pct == pytest.approx(30)
    assert hot.delta_inclusive_pp == pytest.approx(20)
    assert hot.p_inclusive < 1e-10
    assert [c.name for c in result.improvements] == ["rest"]


def test_below_the_threshold_passes_but_is_still_reported():
    result = compare(*GROWTH, CompareOptions(fail_on=25))
    assert result.verdict == "pass" and [c.name for c in result.regressions] == ["hot"]


def test_a_shrink_is_an_improvement_not_a_failure():
    base = profile("b", {"app;hot": 3000, "app;x": 3500, "app;y": 3500})
    head = profile("h", {"app;hot": 1000, "app;x": 4500, "app;y": 4500})
    result = compare(base, head, CompareOptions(fail_on=15))
    assert result.verdict == "pass"
    assert [c.name for c in result.improvements] == ["hot"]
    assert [c.name for c in result.regressions] == ["x", "y"]  # shares sum to 100%


def test_noise_at_low_sample_counts_does_not_fail():
    # 1 of 10 samples, then 3 of 10: +20 points, but well within sampling noise.
    base = profile("b", {"app;hot": 1, "app;rest": 9})
    head = profile("h", {"app;hot": 3, "app;rest": 7})
    result = compare(base, head, CompareOptions(fail_on=5))
    assert result.verdict == "pass" and not result.regressions
    assert result.functions[1].p_inclusive > 0.2


def test_same_profile_twice_reports_nothing():
    result = compare(GROWTH[0], GROWTH[0], CompareOptions(fail_on=0))
    assert result.verdict == "pass"
    assert not result.regressions and not result.improvements


def test_same_shape_at_twice_the_samples_passes():
    double = profile("double", shares(0.10, 0.90, total=20000))
    result = compare(GROWTH[0], double, CompareOptions(fail_on=0))
    assert result.verdict == "pass" and not result.regressions
    assert all(c.delta_inclusive_pp == pytest.approx(0) for c in result.functions)


def test_without_normalizing_more_samples_is_growth():
    double = profile("double", shares(0.10, 0.90, total=20000))
    result = compare(GROWTH[0], double, CompareOptions(fail_on=5, normalize=False))
    assert {c.name for c in result.failed} == {"app", "main", "rest", "hot"}


def test_recursion_counts_once_per_stack_for_inclusive_share():
    p = profile("r", {"app;f;g;f;g;f": 10, "app;x": 10})
    inclusive, own = function_counts(p)
    assert inclusive["f"] == 10 and inclusive["g"] == 10 and own["f"] == 10
    assert own["g"] == 0


def test_renamed_functions_are_matched_not_reported_as_new():
    base = profile("b", {"app;main;parse_v1;lex": 300, "app;main;other": 700})
    head = profile("h", {"app;main;parse_v2;lex": 310, "app;main;other": 690})
    result = compare(base, head, CompareOptions(fail_on=0.5))
    renamed = [c for c in result.functions if c.name == "parse_v2"][0]
    assert renamed.renamed_from == "parse_v1"
    assert renamed.delta_inclusive_pp == pytest.approx(1.0)
    assert result.verdict == "pass"  # +1 pp of 1000 samples is noise
    assert "parse_v1" not in {c.name for c in result.functions}


def test_self_metric_gates_on_own_time():
    base = profile("b", {"app;outer;inner": 5000, "app;outer": 5000})
    head = profile("h", {"app;outer;inner": 8000, "app;outer": 2000})
    by_total = compare(base, head, CompareOptions(fail_on=5, metric=Metric.TOTAL))
    by_self = compare(base, head, CompareOptions(fail_on=5, metric=Metric.SELF))
    assert "outer" not in {c.name for c in by_total.failed}
    assert [c.name for c in by_self.failed] == ["inner"]


def test_min_samples_drops_rare_functions():
    base = profile("b", {"app;rare": 2, "app;common": 998})
    result = compare(base, base, CompareOptions(min_samples=10))
    assert "rare" not in {c.name for c in result.functions}


def test_significance_helpers():
    assert two_proportion_p(100, 1000, 100, 1000) == 1.0
    assert two_proportion_p(100, 1000, 300, 1000) < 1e-20
    assert two_proportion_p(0, 10, 0, 10) == 1.0
    assert poisson_rate_p(100, 100) == 1.0 and poisson_rate_p(100, 200) < 1e-6


def test_json_report_schema():
    doc = json.loads(to_json(compare(*GROWTH, CompareOptions(fail_on=5))))
    assert doc["schema"] == "profiler-compare/1" and doc["verdict"] == "fail"
    assert doc["failed"] == ["hot"] and doc["baseline"]["total_samples"] == 10000
    hot = [f for f in doc["functions"] if f["name"] == "hot"][0]
    assert set(hot) == {"name", "renamed_from", "before", "after", "delta_pp", "p_value",
                        "significant"}
    assert hot["before"]["inclusive_samples"] == 1000 and hot["after"]["inclusive_pct"] == 30
    assert hot["delta_pp"]["inclusive"] == 20 and hot["significant"] is True


def test_markdown_lists_regressions_and_improvements_and_escapes_names():
    text = to_markdown(compare(*GROWTH, CompareOptions(fail_on=5)))
    assert "verdict: **fail**" in text
    assert "| hot | 10.00% | 30.00% | +20.00 pp |" in text
    assert "#### Improvements" in text and "| rest |" in text
    assert md_escape("<img src=x>|`x`") == "\\<img src=x\\>\\|\\`x\\`"


def test_differential_lines_feed_flamegraph_with_current_shape():
    base = profile("b", {"app;a": 100, "app;b": 100})
    head = profile("h", {"app;a": 300, "app;b": 100})
    lines = differential_lines(base, head, normalize=True)
    assert lines == ["app;a 200 300", "app;b 200 100"]
    svg = ET.fromstring(render(lines, Options()).svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    fills = {g.find("s:title", ns).text.split(" (")[0]: g.find("s:rect", ns).get("fill")
             for g in svg.findall("s:g[@id='frames']/s:g", ns)}
    assert fills["a"] == "rgb(255,0,0)" and fills["b"] == "rgb(0,0,255)"
    titles = {g.find("s:title", ns).text for g in svg.findall("s:g[@id='frames']/s:g", ns)}
    # Widths are CURRENT's samples; the delta is the change in the frame's own samples.
    assert "a (300 samples, 75.00%; +25.00%)" in titles
    assert "b (100 samples, 25.00%; -25.00%)" in titles
    assert differential_lines(base, head, normalize=True, baseline_shape=True) == \
        ["app;a 300 200", "app;b 100 200"]
