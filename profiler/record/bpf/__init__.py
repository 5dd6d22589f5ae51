"""The BPF side: the program (profile.bpf.c), the one module that imports
BCC (program.py), compiled programs kept and loaded again (image.py), and
maps and ring buffers read through libbcc_bpf (maps.py)."""
