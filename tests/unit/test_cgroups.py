import pytest

from pyctr_systemd.cgroups import CgroupMount, parse_mountinfo, parse_proc_cgroup

HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 27 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
UNIFIED = (
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
)


def test_hybrid_mounts() -> None:
    mounts = parse_mountinfo(HYBRID)
    assert [(m.mountpoint, m.fstype, m.key) for m in mounts] == [
        ("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"),
        ("/sys/fs/cgroup/memory", "cgroup", "memory"),
        ("/sys/fs/cgroup/systemd", "cgroup", "name=systemd"),
        ("/sys/fs/cgroup/unified", "cgroup2", ""),
    ]
    assert mounts[0].controllers() == {"cpu", "cpuacct"}
    assert mounts[2].controllers() == frozenset()


def test_unified_mount_with_optional_fields() -> None:
    (mount,) = parse_mountinfo(UNIFIED)
    assert (mount.mountpoint, mount.root, mount.fstype, mount.key) == ("/sys/fs/cgroup", "/", "cgroup2", "")


def test_escaped_mountpoint() -> None:
    (mount,) = parse_mountinfo("1 2 0:3 /a\\040b /mnt/with\\040space rw - cgroup cgroup rw,pids\n")
    assert mount.mountpoint == "/mnt/with space"
    assert mount.root == "/a b"


def test_proc_cgroup() -> None:
    text = (
        "12:pids:/pyctr.slice/pyctr-x.scope\n"
        "4:cpu,cpuacct:/a\n"
        "1:name=systemd:/pyctr.slice/pyctr-x.scope\n"
        "0::/\n"
    )
    assert parse_proc_cgroup(text) == {
        "pids": "/pyctr.slice/pyctr-x.scope",
        "cpu,cpuacct": "/a",
        "name=systemd": "/pyctr.slice/pyctr-x.scope",
        "": "/",
    }


def test_path_of_is_relative_to_the_mount_root() -> None:
    mount = CgroupMount("/sys/fs/cgroup/memory", "/sandbox", "cgroup", ("rw", "memory"))
    assert mount.path_of("/sandbox/pyctr.slice/a.scope") == "/sys/fs/cgroup/memory/pyctr.slice/a.scope"
    assert mount.path_of("/sandbox") == "/sys/fs/cgroup/memory"
    with pytest.raises(ValueError):
        mount.path_of("/elsewhere")
