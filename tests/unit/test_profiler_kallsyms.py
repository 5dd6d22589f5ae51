from profiler.symbolize.kallsyms import parse_kallsyms

TEXT = """\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 T do_syscall_64
ffffffff81002000 t helper_local
ffffffff81003000 D some_data
ffffffffc0000000 t mod_func\t[mymod]
"""


def test_lookup_and_unresolved():
    k = parse_kallsyms(TEXT)
    assert k.lookup(0xFFFFFFFF81001234) == "do_syscall_64"
    assert k.lookup(0xFFFFFFFF81002FFF) == "helper_local"
    assert k.lookup(0xFFFFFFFFC0000010) == "mod_func"
    assert k.lookup(0x1000) is None
    assert k.unresolved(0xFFFFFFFF81000010) == "vmlinux+0x10"


def test_hidden_addresses_resolve_nothing():
    k = parse_kallsyms("0000000000000000 T do_syscall_64\n")
    assert k.lookup(0xFFFFFFFF81001234) is None
    assert k.unresolved(0x1234) == "[kernel]+0x1234"
