"""A comparison as JSON (for machines) and Markdown (for a pull request)."""
from __future__ import annotations

import json
import re

from profiler.compare.analysis import SIGNIFICANCE, Comparison, FunctionChange, Metric, Side

SCHEMA = "profiler-compare/1"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~<>&-])")


def to_json(comparison: Comparison) -> str:
    o = comparison.options
    doc = {
        "schema": SCHEMA,
        "baseline": _profile(comparison.baseline),
        "current": _profile(comparison.current),
        "metric": o.metric.value,
        "normalized": o.normalize,
        "fail_on_pp": o.fail_on,
        "significance": SIGNIFICANCE,
        "min_samples": o.min_samples,
        "verdict": comparison.verdict,
        "failed": [c.name for c in comparison.failed],
        "regressions": [c.name for c in comparison.regressions],
        "improvements": [c.name for c in comparison.improvements],
        "functions": [_function(c, o.metric) for c in comparison.functions],
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _profile(profile) -> dict:
    return {"label": profile.label, "total_samples": profile.total,
            "ignored_lines": profile.ignored_lines}


def _side(side: Side) -> dict:
    return {"inclusive_samples": side.inclusive, "self_samples": side.self,
            "inclusive_pct": round(side.inclusive_pct, 6), "self_pct": round(side.self_pct, 6)}


def _function(c: FunctionChange, metric: Metric) -> dict:
    return {
        "name": c.name,
        "renamed_from": c.renamed_from,
        "before": _side(c.before),
        "after": _side(c.after),
        "delta_pp": {"inclusive": round(c.delta_inclusive_pp, 6), "self": round(c.delta_self_pp, 6)},
        "p_value": {"inclusive": c.p_inclusive, "self": c.p_self},
        "significant": c.p_value(metric) < SIGNIFICANCE,
    }


def md_escape(text: str) -> str:
    """Function names are untrusted: no Markdown or HTML may pass through."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " "))


def to_markdown(comparison: Comparison) -> str:
    o = comparison.options
    metric = "inclusive" if o.metric is Metric.TOTAL else "self"
    b, c = comparison.baseline, comparison.current
    gate = (f"fails above +{o.fail_on:g} pp {metric} share at p < {SIGNIFICANCE:g}"
            if o.fail_on is not None else "no gate")
    out = [
        f"### Profile comparison: {md_escape(b.label)} → {md_escape(c.label)}",
        "",
        f"Samples: {b.total:,.0f} → {c.total:,.0f}"
        f" ({'shares of each total' if o.normalize else 'shares of the baseline total'});"
        f" verdict: **{comparison.verdict}** ({gate}).",
    ]
    if comparison.failed:
        out.append("")
        out.append("Over the limit: " + ", ".join(md_escape(f.name) for f in comparison.failed))
    for heading, rows in (("Regressions", comparison.regressions),
                          ("Improvements", comparison.improvements)):
        out += ["", f"#### {heading}", ""]
        if not rows:
            out.append("None significant.")
            continue
        out.append(f"| Function | {metric} before | {metric} after | change | p |")
        out.append("|---|---:|---:|---:|---:|")
        for row in rows[: o.top]:
            before = row.before.inclusive_pct if o.metric is Metric.TOTAL else row.before.self_pct
            after = row.after.inclusive_pct if o.metric is Metric.TOTAL else row.after.self_pct
            name = md_escape(row.name)
            if row.renamed_from:
                name += f" (was {md_escape(row.renamed_from)})"
            out.append(f"| {name} | {before:.2f}% | {after:.2f}% | "
                       f"{row.delta(o.metric):+.2f} pp | {row.p_value(o.metric):.2g} |")
    return "\n".join(out) + "\n"
