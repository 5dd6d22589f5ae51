from conftest import require
from profiler.symbolize.kallsyms import HIDDEN_FRAME, parse_kallsyms

TEXT = """\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 T do_syscall_64
ffffffff81002000 t helper_local
ffffffff81003000 D some_data
ffffffffc0000000 t mod_func\t[mymod]
ffffffffc0000100 t ftrace_trampoline\t[__builtin__ftrace]
"""


def test_lookup_and_unresolved():
    k = parse_kallsyms(TEXT)
    assert k.lookup(0xFFFFFFFF81001234) == "do_syscall_64"
    assert k.lookup(0xFFFFFFFF81002FFF) == "helper_local"
    assert k.lookup(0x1000) is None
    assert k.unresolved(0xFFFFFFFF81000010) == "vmlinux+0x10"


def test_module_symbols_keep_their_module():
    k = parse_kallsyms(TEXT)
    assert k.lookup(0xFFFFFFFFC0000010) == "mod_func [mymod]"
    assert k.lookup(0xFFFFFFFFC0000101) == "ftrace_trampoline [__builtin__ftrace]"


def test_unsorted_input_is_sorted_once():
    lines = TEXT.splitlines()
    k = parse_kallsyms("\n".join(reversed(lines)) + "\n")
    assert list(k.addresses) == sorted(k.addresses)
    assert k.lookup(0xFFFFFFFF81001234) == "do_syscall_64"
    assert k.text_start == 0xFFFFFFFF81000000


def test_data_symbols_never_name_an_address():
    k = parse_kallsyms(TEXT)
    # some_data (D) is skipped: the text symbol before it reaches over it
    assert k.lookup(0xFFFFFFFF81003010) == "helper_local"


def test_hidden_addresses_give_kernel_frames():
    """kptr_restrict: every address reads as zero; naming frames from that
    table would be garbage."""
    k = parse_kallsyms("0000000000000000 T _stext\n0000000000000000 T do_syscall_64\n"
                       "0000000000000000 t mod_func\t[mymod]\n")
    assert k.hidden
    assert k.lookup(0xFFFFFFFF81001234) is None
    assert k.unresolved(0xFFFFFFFF81001234) == HIDDEN_FRAME == "[kernel]"


def test_empty_and_garbage():
    assert parse_kallsyms("").lookup(0x1234) is None
    k = parse_kallsyms("not kallsyms\nzzzz T x\n\x00\x01")
    assert k.lookup(0xFFFF) is None and not k.hidden


def test_kernel_text_cache_serves_the_same_names(tmp_path):
    """Cold: read and cache the kernel image's text. Warm: answer from the
    cache inside _stext.._etext, and from a fresh read outside it."""
    import os
    from profiler.binary.cache import SymbolCache
    from profiler.symbolize.kallsyms import _address_of, load_kernel_symbols, read_kallsyms
    full = read_kallsyms()
    require(not full.hidden and len(full.addresses) > 0,
            "kernel addresses are hidden here (kptr_restrict): needs root")
    cold = load_kernel_symbols(SymbolCache(str(tmp_path)))
    entries = list(tmp_path.rglob("*.kallsyms"))
    assert len(entries) == 1
    warm = load_kernel_symbols(SymbolCache(str(tmp_path)))
    assert len(warm.addresses) < len(full.addresses)  # the cached subset, not a fresh read
    etext = _address_of(full, "_etext")
    inside = [a + 1 for a in full.addresses[::997] if full.text_start <= a < etext]
    assert len(inside) > 50
    assert [warm.lookup(a) for a in inside] == [full.lookup(a) for a in inside] == \
        [cold.lookup(a) for a in inside]
    outside = [a + 1 for a in full.addresses if a >= etext][:20]
    assert outside, "no symbols past _etext"
    assert [warm.lookup(a) for a in outside] == [full.lookup(a) for a in outside]
    # A damaged entry is read afresh, never trusted.
    entries[0].write_bytes(b"\x10\x00\x00\x00" + b'{"tables": [], "text": 5}  ')
    again = load_kernel_symbols(SymbolCache(str(tmp_path)))
    assert again.lookup(inside[0]) == full.lookup(inside[0])
    assert os.path.getsize(entries[0]) > 1000  # and written again
