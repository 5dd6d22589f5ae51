"""What the stages hand each other: raw.py (what recording produces:
counts, stacks, maps snapshots, vDSO images), maps.py (/proc/PID/maps
entries), profile.py (the symbolized, pprof-shaped profile every output is
made from)."""
