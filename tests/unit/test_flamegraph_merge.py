"""Merging equals a direct transcription of flamegraph.pl's flow()."""
from hypothesis import given, settings, strategies as st

from flamegraph.folded import parse_folded
from flamegraph.merge import chain_annotated, merge, ordered, total_of
from flamegraph.options import Order
from merge_oracle import reference_frames


def frames_of(lines, min_width=0.0, order=Order.MERGED, reverse=False, chain=False):
    entries = ordered(parse_folded(lines).entries, order, reverse)
    merged = merge(entries, min_width, chain=chain)
    got = sorted(((f.name, f.depth, f.start, f.end, f.delta) for f in merged.frames), key=repr)
    return got, reference_frames(entries, min_width, chain), merged


def test_shared_prefixes_merge_into_one_frame():
    got, _, merged = frames_of(["a;b 2", "a;c 3", "d 1"])
    assert ("a", 1, 0.0, 5.0, None) in got
    assert merged.total == 6 and merged.max_depth == 2


def test_sorted_as_whole_lines_like_flamegraph_pl():
    # ' ' sorts before ';': "a 5" and "a;x 1" are split by "a b;y 1".
    got, ref, _ = frames_of(["a;x 1", "a b;y 1", "a 5"])
    assert got == ref
    assert [f for f in got if f[0] == "a"] == [("a", 1, 0.0, 5.0, None), ("a", 1, 6.0, 7.0, None)]


def test_flamechart_keeps_input_order_and_merges_only_neighbours():
    got, ref, _ = frames_of(["a;b 1", "c 1", "a;b 1"], order=Order.TIME)
    assert got == ref
    assert [f[:4] for f in got if f[0] == "a"] == [("a", 1, 0.0, 1.0), ("a", 1, 2.0, 3.0)]


def test_reverse_merges_from_the_leaf():
    got, ref, _ = frames_of(["a;x;leaf 1", "b;y;leaf 2"], reverse=True)
    assert got == ref
    assert ("leaf", 1, 0.0, 3.0, None) in got


def test_differential_delta_goes_to_the_new_leaf_only():
    got, ref, merged = frames_of(["a;b 1 5", "a;c 4 2"])
    assert got == ref and merged.differential and merged.max_delta == 4
    deltas = {f[0]: f[4] for f in got}
    assert deltas == {"": 0.0, "a": 0.0, "b": 4.0, "c": -2.0}


def test_minimum_width_prunes_narrow_frames():
    got, ref, _ = frames_of(["a;b 100", "a;c 1"], min_width=2)
    assert got == ref
    assert "c" not in {f[0] for f in got}


def test_chain_palette_marks_wakers():
    assert chain_annotated("a;b;--;w1;w2") == "a;b;--;w1_[w];w2_[w]"
    got, ref, _ = frames_of(["a;--;w 1", "b 1"], chain=True)
    assert got == ref


def test_total_is_summed_in_drawing_order():
    entries = ordered(parse_folded(["b 0.1", "a 0.2", "c 0.3"]).entries, Order.MERGED, False)
    assert total_of(entries) == (0.2 + 0.1) + 0.3


frame = st.sampled_from(["a", "b", "c", "a b", "", "x_[k]", "--"])
stack = st.lists(frame, min_size=0, max_size=6).map(";".join)
count = st.integers(min_value=0, max_value=20).map(str) | st.sampled_from(["0.5", "2.25", "7."])
line = st.tuples(stack, count, st.none() | count).map(
    lambda t: f"{t[0]} {t[1]}" + (f" {t[2]}" if t[2] is not None else ""))


@settings(max_examples=300)
@given(st.lists(line, max_size=25), st.sampled_from([0.0, 0.5, 3.0]),
       st.sampled_from(list(Order)), st.booleans(), st.booleans())
def test_merge_equals_flamegraph_pl_flow(lines, min_width, order, reverse, chain):
    got, ref, _ = frames_of(lines, min_width, order, reverse, chain)
    assert got == ref
