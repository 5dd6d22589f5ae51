from profiler.model.maps import find_entry, parse_maps

MAPS = """\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234                       /usr/bin/my prog
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234                       /usr/bin/my prog
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f1000000000-7f1000100000 r-xp 00028000 fd:01 99                         /tmp/lib.so (deleted)
7f2000000000-7f2000001000 r-xs 00000000 00:01 77                         /memfd:jit (deleted)
7ffd0000000-7ffd0002000 r-xp 00000000 00:00 0                            [vdso]
garbage line
"""


def test_parse_maps_fields_and_kinds():
    entries = parse_maps(MAPS)
    assert len(entries) == 6
    exe = entries[1]
    assert (exe.start, exe.end, exe.perms, exe.offset, exe.dev, exe.inode) == \
        (0x55D0C0A01000, 0x55D0C0A02000, "r-xp", 0x1000, "fd:01", 1234)
    assert exe.path == "/usr/bin/my prog" and exe.module == "my prog" and exe.executable
    anon = entries[2]
    assert anon.path == "" and not anon.is_file and anon.module == "[anon]"
    deleted = entries[3]
    assert deleted.deleted and deleted.file_path == "/tmp/lib.so" and deleted.module == "lib.so"
    assert entries[4].file_path == "/memfd:jit"
    assert entries[5].path == "[vdso]" and entries[5].module == "[vdso]" and not entries[5].is_file


def test_find_entry():
    entries = parse_maps(MAPS)
    assert find_entry(entries, 0x55D0C0A01800).offset == 0x1000
    assert find_entry(entries, 0x55D0C0A02000) is None
