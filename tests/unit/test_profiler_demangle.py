import shutil

import pytest

from profiler.symbolize.demangle import demangle_all


def test_cpp_and_rust_in_one_batch():
    if shutil.which("c++filt") is None:
        pytest.skip("needs c++filt (binutils)")
    out = demangle_all(["_ZN4work7SpinnerIiE4spinEd", "main",
                        "_ZN4core3ptr13drop_in_place17h0123456789abcdefE"])
    assert out == {"_ZN4work7SpinnerIiE4spinEd": "work::Spinner<int>::spin(double)",
                   "_ZN4core3ptr13drop_in_place17h0123456789abcdefE": "core::ptr::drop_in_place"}
