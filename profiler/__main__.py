"""`python -m profiler ...` runs the profiler CLI."""
from profiler.cli import main_entry

main_entry()
