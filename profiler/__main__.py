"""`python -m profiler ...` runs the profiler CLI."""
from profiler.cli.main import main_entry

main_entry()
