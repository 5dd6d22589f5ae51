"""Colors: flamegraph.pl's palettes, reproduced value for value."""
import shutil
import subprocess

import pytest

from conftest import require
from hypothesis import given, settings, strategies as st

from flamegraph.color import (Colorer, differential_fill, frame_fill, name_value, namehash,
                              perl_seeded_rand, read_palette_map, strip_annotation,
                              write_palette_map)
from flamegraph.options import ColorMode

PERL = shutil.which("perl")


def perl_rand_after_srand(seeds):
    script = "for (@ARGV) { srand($_); printf qq{%.17g\\n}, rand(1) }"
    out = subprocess.run([PERL, "-e", script, *map(str, seeds)], capture_output=True,
                         text=True, check=True).stdout
    return [float(x) for x in out.split()]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=50))
def test_drand48_equals_perls(seeds):
    require(PERL is not None, "perl is not installed")
    assert [perl_seeded_rand(s) for s in seeds] == perl_rand_after_srand(seeds)


def test_default_color_is_a_pure_function_of_the_name():
    # srand(sum of "main"'s bytes = 417) in Perl, then rand(1): 0.77859998431904742
    assert name_value("main") == pytest.approx(0.77859998431904742, abs=1e-16)
    v = name_value("main")
    hot = Colorer("hot", ColorMode.NAME, None)
    assert hot.color("main") == f"rgb({205 + int(50 * v)},{int(230 * v)},{int(55 * v)})"
    assert hot.color("main") == Colorer("hot", ColorMode.NAME, None).color("main")


def test_non_ascii_names_are_seeded_by_their_utf8_bytes():
    assert name_value("\u00e9") == perl_seeded_rand(0xC3 + 0xA9)


def test_hash_mode_uses_namehash_of_name_and_reversed_name():
    c = Colorer("hot", ColorMode.HASH, None).color("func_a")
    v1, v2 = namehash("func_a"), namehash("a_cnuf")
    assert c == f"rgb({205 + int(50 * v2)},{int(230 * v1)},{int(55 * v2)})"


def test_namehash_weights_the_first_characters_and_cuts_module_prefixes():
    assert namehash("abcdef") == namehash("abcxyz")  # only 3 characters count
    assert namehash("libc.so`read") == namehash("read")  # what its regex really does
    assert 0 <= namehash("x") <= 1


@pytest.mark.parametrize("palette,name,family", [
    ("java", "java/lang/String.hashCode", "green"),
    ("java", "Interpreter_[j]", "green"),
    ("java", "inlined_[i]", "aqua"),
    ("java", "std::vector::push", "yellow"),
    ("java", "do_syscall_64_[k]", "orange"),
    ("java", "read", "red"),
    ("js", "LazyCompile:*foo /app/x.js:1_[j]", "green"),
    ("js", "Builtin:ArrayMap_[j]", "aqua"),
    ("js", "node::Start", "yellow"),
    ("perl", "Perl_pp_add", "green"),
    ("chain", "waker_[w]", "aqua"),
    ("chain", "sleeper", "blue"),
])
def test_multi_palettes_pick_by_annotation(palette, name, family):
    assert Colorer(palette, ColorMode.NAME, None).color(name) == \
        Colorer(family, ColorMode.NAME, None).color(name)


def test_separator_frames_are_grey_and_differentials_red_or_blue():
    c = Colorer("hot", ColorMode.NAME, None)
    assert frame_fill("-", None, 1, False, c) == "rgb(200,200,200)"
    assert frame_fill("--", 5.0, 10, False, c) == "rgb(160,160,160)"
    assert differential_fill(10, 10, False) == "rgb(255,0,0)"
    assert differential_fill(-10, 10, False) == "rgb(0,0,255)"
    assert differential_fill(-10, 10, True) == "rgb(255,0,0)"
    assert differential_fill(0, 10, False) == "rgb(255,255,255)"
    assert differential_fill(5, 10, False) == "rgb(255,105,105)"


def test_annotations_are_stripped_only_at_the_end():
    assert strip_annotation("vfs_read_[k]") == "vfs_read"
    assert strip_annotation("a_[k]b") == "a_[k]b"


def test_consistent_palette_keeps_known_colors_and_records_new_ones():
    c = Colorer("hot", ColorMode.NAME, {"main": "rgb(1,2,3)"})
    assert c.color("main") == "rgb(1,2,3)"
    c.color("other")
    text = write_palette_map(c.palette_map)
    assert text.splitlines()[0] == "main->rgb(1,2,3)"
    assert read_palette_map(text) == c.palette_map
