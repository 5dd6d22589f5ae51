import shutil

import pytest

from conftest import require

from profiler.symbolize.demangle import demangle_all


def test_cpp_and_rust_in_one_batch():
    require(shutil.which("c++filt") is not None, "needs c++filt (binutils)")
    out = demangle_all(["_ZN4work7SpinnerIiE4spinEd", "main",
                        "_ZN4core3ptr13drop_in_place17h0123456789abcdefE"])
    assert out == {"_ZN4work7SpinnerIiE4spinEd": "work::Spinner<int>::spin(double)",
                   "_ZN4core3ptr13drop_in_place17h0123456789abcdefE": "core::ptr::drop_in_place"}


def test_a_name_that_breaks_lines_cannot_shift_the_others():
    """One answer line per name: a carriage return inside a name would
    make c++filt answer one line too many and shift every later name."""
    require(shutil.which("c++filt") is not None, "needs c++filt (binutils)")
    out = demangle_all(["_Z1av", "_Z1b\rX", "_Z1cv", "_Z1dv", "_Z1e\nY", "_Z1f\x00v"])
    assert out == {"_Z1av": "a()", "_Z1cv": "c()", "_Z1dv": "d()"}


def test_rust_v0_and_legacy_lose_their_hashes():
    require(shutil.which("c++filt") is not None, "needs c++filt (binutils)")
    out = demangle_all(["_RNvCs1234_7mycrate3foo"])
    assert out == {"_RNvCs1234_7mycrate3foo": "mycrate::foo"}
