"""`python -m profiler.cli ...` is `python -m profiler ...`."""
from profiler.cli.main import main_entry

main_entry()
