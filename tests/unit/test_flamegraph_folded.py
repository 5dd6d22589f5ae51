"""The folded-stack grammar, as flamegraph.pl reads it."""
from hypothesis import given, strategies as st

import re

from flamegraph.folded import (Entry, decode_lines, format_line, parse_folded, parse_line,
                               split_frames)

# flamegraph.pl's grammar as one regular expression: the reference the fast
# parser is compared with.
_TAIL = re.compile(r"[\t\n\v\f\r ](\d+(?:\.\d*)?)\Z", re.ASCII)


def _parse_line_regex(line):
    last = _TAIL.search(line)
    if last is None:
        return None
    end = last.start()
    first = _TAIL.search(line, 0, end)
    counts = [float(m.group(1)) for m in (first, last) if m is not None]
    if float("inf") in counts:
        return None
    if first is None:
        return Entry(line, end, counts[0])
    return Entry(line, first.start(), counts[0], counts[1])


def test_count_is_the_last_number():
    e = parse_line("a;b;c 42")
    assert (e.stack, e.count, e.count2) == ("a;b;c", 42, None)


def test_two_numbers_make_a_differential_line():
    e = parse_line("a;b 10 25")
    assert (e.stack, e.count, e.count2, e.weight) == ("a;b", 10, 25, 25)


def test_fractional_counts_and_a_trailing_dot():
    assert parse_line("a 31.23").count == 31.23
    assert parse_line("a 12.").count == 12


def test_spaces_inside_names_stay_in_the_stack():
    e = parse_line("main;operator new(unsigned long) 3")
    assert split_frames(e.stack) == ["main", "operator new(unsigned long)"]


def test_trailing_empty_frames_are_dropped():
    assert split_frames("a;b;") == split_frames("a;b") == ["a", "b"]
    assert split_frames(";a") == ["", "a"]
    assert split_frames("") == []


def test_lines_that_do_not_parse_are_counted_with_their_numbers():
    folded = parse_folded(["a 1", "no count", "", "x 12V.43", "b 2", "5", "a 1e26"])
    assert [e.stack for e in folded.entries] == ["a", "b"]
    assert folded.ignored == 5
    assert folded.ignored_line_numbers == (2, 3, 4, 6, 7)


def test_crlf_line_ends_are_accepted():
    folded = parse_folded(decode_lines(b"a;b 1\r\nc 2\r\n"))
    assert [(e.stack, e.count) for e in folded.entries] == [("a;b", 1), ("c", 2)]
    assert folded.ignored == 0


def test_invalid_utf8_is_replaced_not_fatal():
    folded = parse_folded(decode_lines(b"caf\xe9;x 3\n\xff\xfe 1\n"))
    assert folded.entries[0].stack == "caf\ufffd;x"
    assert len(folded.entries) == 2


def test_unicode_digits_are_not_counts():
    # Perl's \d on bytes is ASCII only.
    assert parse_line("a \u0661\u0662") is None


def test_format_line_replaces_semicolons_in_names():
    assert format_line(["a", "std::array<int; 3>"], 5) == "a;std::array<int: 3> 5"
    assert format_line(["a"], 1.5, 2) == "a 1.5 2"
    # No exponent: the grammar would not read it back.
    assert format_line(["a"], 1e-06) == "a 0.000001"
    assert parse_line(format_line(["a"], 2.5e-08)).count == 2.5e-08


line_text = st.text(alphabet=st.sampled_from(list("ab ;\t.0123456789\r\x0b\u00e9")), max_size=30)


@given(line_text)
def test_fast_path_agrees_with_the_reference_grammar(line):
    assert parse_line(line) == _parse_line_regex(line)
