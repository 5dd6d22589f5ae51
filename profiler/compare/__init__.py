"""The CI gate: two profiles compared function by function (analysis.py),
and its JSON and Markdown reports (report.py)."""
