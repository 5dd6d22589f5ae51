"""Stack ids -> frames (frame-pointer stacks from BPF; later CFI unwinding)."""
