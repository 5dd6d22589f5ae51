"""Finding the cgroup v2 hierarchy and our place in it (pure parsers)."""
from profiler.record.cgroup import parse_cgroup2_mount, parse_own_cgroup

HYBRID = """\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""


def test_cgroup2_mount_is_found_in_hybrid_and_unified_layouts():
    assert parse_cgroup2_mount(HYBRID) == "/sys/fs/cgroup/unified"
    unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"
    assert parse_cgroup2_mount(unified) == "/sys/fs/cgroup"
    assert parse_cgroup2_mount("25 30 0:23 / /sys rw - sysfs sysfs rw\n") is None


def test_own_cgroup_path():
    assert parse_own_cgroup("4:memory:/x\n0::/user.slice/session-1.scope\n") == \
        "/user.slice/session-1.scope"
    assert parse_own_cgroup("0::/\n") == "/"
    assert parse_own_cgroup("4:memory:/x\n") == "/"
