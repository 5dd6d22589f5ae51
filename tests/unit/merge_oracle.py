"""A direct transcription of flamegraph.pl's flow(): one open entry per frame.

Slow but obviously faithful; the tests compare flamegraph.merge with it.
"""
from flamegraph.folded import split_frames
from flamegraph.merge import chain_annotated


def reference_frames(entries, min_width, chain=False):
    """[(name, depth, start, end, delta)] sorted; entries already ordered."""
    nodes = []
    last = []
    tmp = {}
    time = 0.0

    def flow(last, this, v, d):
        same = 0
        while same < len(last) and same < len(this) and last[same] == this[same]:
            same += 1
        for i in range(len(last) - 1, same - 1, -1):
            start, delta = tmp.pop(i)
            nodes.append((last[i], i, start, v, delta))
        for i in range(same, len(this)):
            tmp[i] = (v, None if d is None else (d if i == len(this) - 1 else 0.0))
        return this

    for e in entries:
        stack = chain_annotated(e.stack) if chain else e.stack
        d = None if e.count2 is None else e.count2 - e.count
        last = flow(last, [""] + split_frames(stack), time, d)
        time += e.weight
    flow(last, [], time, None)
    return sorted((n for n in nodes if n[3] - n[2] >= min_width), key=repr)
