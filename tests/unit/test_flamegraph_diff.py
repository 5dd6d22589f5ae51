"""flamegraph.diff: difffolded.pl's semantics as pure functions, with inline text."""
from collections import Counter

from hypothesis import given, settings, strategies as st

from flamegraph.diff import (diff_folded, format_diff_count, normalized, stack_and_count,
                             strip_addresses)
from flamegraph.folded import decode_lines, parse_folded


def folded(text: str):
    return parse_folded(decode_lines(text.encode("utf-8")))


def diff(before: str, after: str, *, normalize=False, strip_hex=False) -> list[str]:
    return diff_folded(folded(before), folded(after), normalize=normalize, strip_hex=strip_hex)


def test_every_stack_of_either_side_once_with_zero_where_missing():
    assert diff("a;b 3\na;c 1\n", "a;b 5\nd 2\n") == ["a;b 3 5", "a;c 1 0", "d 0 2"]


def test_duplicate_stacks_are_summed_per_side():
    assert diff("a 1\nb 2\na 3\n", "a 10\na 1\n") == ["a 4 11", "b 2 0"]


def test_output_is_sorted_by_code_point_whatever_the_input_order():
    before = "z 1\nä 1\na;b 1\nA 1\na 1\n"
    lines = diff(before, "")
    assert lines == sorted(lines) == ["A 1 0", "a 1 0", "a;b 1 0", "z 1 0", "ä 1 0"]
    assert diff("\n".join(reversed(before.splitlines())), "") == lines


def test_stack_is_everything_before_the_last_count_as_in_difffolded():
    # difffolded.pl has no notion of differential input: `a;b 1 2` is stack `a;b 1`.
    assert diff("a;b 1 2\n", "a;b 1 5\n") == ["a;b 1 2 5"]
    entry = folded("x;f 7\t8").entries[0]
    assert stack_and_count(entry) == ("x;f 7", 8.0)


def test_separators_and_trailing_whitespace_follow_the_perl_regex():
    # `^(.*)\s+?(\d+...)$`: one whitespace character separates; any other stays in the stack.
    assert diff("a;b\t3\n", "a;b  4\n") == ["a;b  0 4", "a;b 3 0"]


def test_stacks_are_compared_as_text_not_as_frames():
    assert diff("a;b; 1\n", "a;b 1\n") == ["a;b 0 1", "a;b; 1 0"]


def test_crlf_input_is_accepted():
    assert diff("a;b 1\r\nc 2\r\n", "a;b 3\n") == ["a;b 1 3", "c 2 0"]


def test_invalid_lines_are_skipped_not_merged_into_an_empty_stack():
    assert diff("a 1\nno count here\n\n", "a 2\n") == ["a 1 2"]


def test_empty_stack_with_a_count_is_kept():
    assert diff(" 4\n", "") == [" 4 0"]


def test_fractional_counts_are_summed_and_printed_without_loss():
    assert diff("a 0.5\na 0.25\n", "a 1.5\nb 2.\n") == ["a 0.75 1.5", "b 0 2"]


def test_integer_counts_never_get_a_decimal_point_or_exponent():
    assert diff("a 999999999999999\na 1\n", "a 4000000000000000\n") == \
        ["a 1000000000000000 4000000000000000"]
    assert format_diff_count(3.0) == "3"
    assert format_diff_count(2.5) == "2.5"


def test_overflowing_counts_are_invalid_lines_and_specials_print_as_perl_does():
    huge = "9" * 400  # no float holds it: the parser rejects the line
    assert diff(f"a {huge}\nb 2\n", "a 1\n") == ["a 0 1", "b 2 0"]
    assert format_diff_count(float("nan")) == "NaN"
    assert format_diff_count(float("-inf")) == "-Inf"


# -s


def test_strip_hex_replaces_every_address_then_merges():
    assert strip_addresses("a;0x7fAB12;b+0x1f") == "a;0x...;b+0x..."
    lines = diff("a;0x7fff1234;b 1\na;0xDEAD;b 2\n", "a;0x1;b 5\n", strip_hex=True)
    assert lines == ["a;0x...;b 3 5"]


def test_strip_hex_follows_the_perl_pattern_exactly():
    assert strip_addresses("0X1F") == "0X1F"  # uppercase X is not matched
    assert strip_addresses("x0x1g") == "x0x...g"  # matched inside a word too
    assert strip_addresses("0x") == "0x"  # needs a digit
    assert strip_addresses("0x0x1") == "0x...x1"  # leftmost match is `0x0`


def test_without_strip_hex_addresses_are_kept():
    assert diff("a;0x1 1\n", "a;0x2 1\n") == ["a;0x1 1 0", "a;0x2 0 1"]


# -n


def test_normalize_scales_before_to_the_after_total_and_truncates():
    # totals 3 and 10: a = int(1 * 10 / 3) = 3, b = int(2 * 10 / 3) = 6
    assert diff("a 1\nb 2\n", "a 5\nb 5\n", normalize=True) == ["a 3 5", "b 6 5"]


def test_normalize_multiplies_before_dividing_like_perl():
    # 49 * (1 / 49) is 0.999...; (49 * 1) / 49 is exactly 1.
    assert normalized(49, 49, 1) == 1
    assert diff("a 49\n", "a 1\n", normalize=True) == ["a 1 1"]


def test_normalize_truncates_toward_zero_fractional_counts_too():
    assert diff("a 1.5\nb 0.5\n", "a 5\n", normalize=True) == ["a 3 5", "b 1 0"]


def test_normalize_leaves_counts_alone_when_totals_are_equal():
    assert diff("a 0.5\nb 1.5\n", "a 2\n", normalize=True) == ["a 0.5 2", "b 1.5 0"]


def test_normalize_only_touches_the_before_column():
    assert diff("a 1\n", "a 3\nb 3\n", normalize=True) == ["a 6 3", "b 0 3"]


def test_normalize_with_an_empty_or_zero_before_does_not_divide_by_zero():
    assert diff("", "a 3\n", normalize=True) == ["a 0 3"]
    assert diff("a 0\n", "a 3\n", normalize=True) == ["a 0 3"]


def test_normalize_applies_after_strip_hex_merged_the_stacks():
    # merged before: 0x... = 2 of total 4; scaled to 8: 4 (not 2 + 2 computed apart)
    lines = diff("f;0x1 1\nf;0x2 1\ng 2\n", "f;0x3 8\n", normalize=True, strip_hex=True)
    assert lines == ["f;0x... 4 8", "g 4 0"]


# properties

_frame = st.sampled_from(["main", "a", "b", "0x7f00", "0xbeef", "f 1", "ä", "x\ty", ""])
_stack = st.lists(_frame, min_size=0, max_size=4).map(";".join)
_profile = st.lists(st.tuples(_stack, st.integers(0, 10**6)), max_size=30)


def _text(profile) -> str:
    return "".join(f"{stack} {count}\n" for stack, count in profile)


def _columns(lines):
    """{stack: (before, after)} read back from the output, splitting at the last two spaces."""
    out = {}
    for line in lines:
        stack, c1, c2 = line.rsplit(" ", 2)
        assert stack not in out
        out[stack] = (int(c1), int(c2))
    return out


@settings(max_examples=200, deadline=None)
@given(_profile, st.booleans(), st.booleans())
def test_a_profile_diffed_with_itself_is_unchanged_on_every_line(profile, normalize, strip):
    lines = diff(_text(profile), _text(profile), normalize=normalize, strip_hex=strip)
    assert all(c1 == c2 for c1, c2 in _columns(lines).values())


@settings(max_examples=200, deadline=None)
@given(_profile, _profile, st.booleans())
def test_without_normalize_each_column_is_that_profile_merged(before, after, strip):
    lines = diff(_text(before), _text(after), strip_hex=strip)
    columns = _columns(lines)
    key = strip_addresses if strip else (lambda s: s)
    expected_before, expected_after = Counter(), Counter()
    for stack, count in before:
        expected_before[key(stack)] += count
    for stack, count in after:
        expected_after[key(stack)] += count
    assert set(columns) == {key(s) for s, _ in before + after}
    assert {s: c[0] for s, c in columns.items() if s in expected_before} == dict(expected_before)
    assert {s: c[1] for s, c in columns.items() if s in expected_after} == dict(expected_after)
    assert lines == sorted(lines)


@settings(max_examples=200, deadline=None)
@given(_profile, _profile)
def test_normalized_before_column_sums_to_the_after_total_less_truncation(before, after):
    columns = _columns(diff(_text(before), _text(after), normalize=True))
    before_total = sum(c for _, c in before)
    after_total = sum(c for _, c in after)
    scaled = sum(c1 for c1, _ in columns.values())
    if before_total == 0 or before_total == after_total:
        assert scaled == before_total
    else:
        # each stack loses less than 1 to truncation
        assert after_total - len(columns) < scaled <= after_total


@settings(max_examples=100, deadline=None)
@given(_profile, _profile, st.randoms(use_true_random=False))
def test_output_does_not_depend_on_input_line_order(before, after, rng):
    shuffled = list(before)
    rng.shuffle(shuffled)
    assert diff(_text(before), _text(after), normalize=True) == \
        diff(_text(shuffled), _text(after), normalize=True)
