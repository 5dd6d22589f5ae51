"""The BPF side: the program (profile.bpf.c) and its -D flags (config.py),
compiling with BCC, the one module that imports it (compiler.py), compiled
programs kept and loaded again (image.py), the run's maps and rings
(program.py, maps.py), and what user space makes of them: stack keys
(stackkeys.py), dwarf-mode copy records (copies.py), fp-mode callers of
frameless leaves (leaves.py)."""
