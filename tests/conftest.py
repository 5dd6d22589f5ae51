"""Shared test plumbing.

Tests that need root, BPF or a browser skip with a reason on a developer's
machine, but under CI (CI=true) a skip would hide a broken environment, so
there the same condition fails the test instead.
"""
import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The symbolizer keeps a disk cache under $XDG_CACHE_HOME: tests (and the
# profilers they start) get a fresh one, never the user's.
_CACHE_HOME = tempfile.mkdtemp(prefix="profiler-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
atexit.register(shutil.rmtree, _CACHE_HOME, True)


def require(condition: bool, reason: str) -> None:
    """Skip (or, under CI, fail) the calling test unless `condition` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    return SHARED


def pytest_addoption(parser):
    parser.addoption("--bless", action="store_true",
                     help="rewrite the golden files from the current output")


@pytest.fixture
def bless(request) -> bool:
    return request.config.getoption("--bless") or os.environ.get("BLESS") == "1"
