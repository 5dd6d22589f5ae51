"""Recording: the loop (recorder.py) over the BPF sampler (bpf/), the
processes it watches and snapshots (procwatch.py), the command it launches
in a cgroup of its own (launcher.py, cgroup.py), and the events, PMUs, CPUs
and kernel headers it needs (events.py, pmus.py, cpus.py, kheaders.py)."""
