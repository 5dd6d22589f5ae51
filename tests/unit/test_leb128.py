"""The one LEB128 reader (profiler/binary/leb128.py) the DWARF, CFI and
expression readers share, on the DWARF 5 specification's own examples
(section 7.6, figures 22 and 23) and on bytes that must be refused."""
from __future__ import annotations

import pytest

from profiler.binary.leb128 import Malformed, sleb, uleb

UNSIGNED = [(2, b"\x02"), (127, b"\x7f"), (128, b"\x80\x01"), (129, b"\x81\x01"),
            (130, b"\x82\x01"), (12857, b"\xb9\x64")]
SIGNED = [(2, b"\x02"), (-2, b"\x7e"), (127, b"\xff\x00"), (-127, b"\x81\x7f"),
          (128, b"\x80\x01"), (-128, b"\x80\x7f"), (129, b"\x81\x01"), (-129, b"\xff\x7e")]


@pytest.mark.parametrize("value,raw", UNSIGNED)
def test_the_specifications_unsigned_examples(value, raw):
    assert uleb(b"\xaa" + raw + b"\xbb", 1) == (value, 1 + len(raw))


@pytest.mark.parametrize("value,raw", SIGNED)
def test_the_specifications_signed_examples(value, raw):
    assert sleb(b"\xaa" + raw + b"\xbb", 1) == (value, 1 + len(raw))


def test_the_largest_64_bit_values_read():
    assert uleb(b"\xff" * 9 + b"\x01", 0) == ((1 << 64) - 1, 10)
    assert sleb(b"\x80" * 9 + b"\x7f", 0) == (-(1 << 63), 10)


def test_a_number_running_past_its_end_is_refused():
    with pytest.raises(Malformed):
        uleb(b"\x80\x80\x01", 0, end=2)  # the last byte is past `end`
    with pytest.raises(Malformed):
        sleb(b"\x80", 0)


def test_a_run_of_continuation_bytes_is_refused_after_eleven():
    with pytest.raises(Malformed, match="11 bytes"):
        uleb(b"\xff" * (1 << 20), 0)
