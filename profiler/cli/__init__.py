"""The commands: argv -> options, known failures -> one message each.
main.py: `profiler record | report | list-events`; compare.py: `profiler
compare`; demo.py: `make demo`; endofrun.py: what the end of a run says."""

PROG = "profiler"
