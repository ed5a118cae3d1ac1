"""pyctr_systemd.mounts: mount options and runc's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyctr_systemd import mounts, spec
from pyctr_systemd import syscalls as sc
from pyctr_systemd.init import launch
from pyctr_systemd.mounts import (
    DEFAULT_DEVICES,
    DEFAULT_MOUNTS,
    MASKED_PATHS,
    READONLY_PATHS,
    MountEntry,
    entry,
    parse_options,
)

DATA = Path(__file__).resolve().parent / "data"
NOSUID, NODEV, NOEXEC, RDONLY = sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC, sc.MS_RDONLY
BIND, REC = sc.MS_BIND, sc.MS_REC


def runc_spec() -> spec.Config:
    return spec.parse(json.loads((DATA / "runc-spec.json").read_text()), "/b")


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), (0, (), "", False)),
        (("defaults",), (0, (), "", False)),
        (("ro",), (RDONLY, (), "", False)),
        (("ro", "rw"), (0, (), "", False)),
        (("rw", "ro"), (RDONLY, (), "", False)),
        (("nosuid", "nodev", "noexec"), (NOSUID | NODEV | NOEXEC, (), "", False)),
        (("nosuid", "suid", "nodev", "dev", "noexec", "exec"), (0, (), "", False)),
        (("sync",), (mounts.MS_SYNCHRONOUS, (), "", False)),
        (("sync", "async"), (0, (), "", False)),
        (("dirsync", "mand"), (mounts.MS_DIRSYNC | mounts.MS_MANDLOCK, (), "", False)),
        (("mand", "nomand"), (0, (), "", False)),
        (("noatime", "nodiratime"), (mounts.MS_NOATIME | mounts.MS_NODIRATIME, (), "", False)),
        (("noatime", "atime", "nodiratime", "diratime"), (0, (), "", False)),
        (("relatime",), (mounts.MS_RELATIME, (), "", False)),
        (("relatime", "norelatime"), (0, (), "", False)),
        (("strictatime",), (mounts.MS_STRICTATIME, (), "", False)),
        (("strictatime", "nostrictatime"), (0, (), "", False)),
        (("remount", "ro"), (sc.MS_REMOUNT | RDONLY, (), "", False)),
        (("bind",), (BIND, (), "", True)),
        (("rbind",), (BIND | REC, (), "", True)),
        (("rbind", "ro", "nosuid"), (BIND | REC | RDONLY | NOSUID, (), "", True)),
        (("rprivate",), (0, (sc.MS_PRIVATE | REC,), "", False)),
        (("private",), (0, (sc.MS_PRIVATE,), "", False)),
        (
            ("shared", "rslave", "unbindable", "runbindable"),
            (
                0,
                (mounts.MS_SHARED, mounts.MS_SLAVE | REC, mounts.MS_UNBINDABLE, mounts.MS_UNBINDABLE | REC),
                "",
                False,
            ),
        ),
        (("rshared",), (0, (mounts.MS_SHARED | REC,), "", False)),
        (("mode=755", "size=65536k"), (0, (), "mode=755,size=65536k", False)),
        (("nosuid", "newinstance", "ptmxmode=0666"), (NOSUID, (), "newinstance,ptmxmode=0666", False)),
        (("tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z"), (0, (), "", False)),
        (("ro", "tmpcopyup", "uid=5", "rprivate"), (RDONLY, (sc.MS_PRIVATE | REC,), "uid=5", False)),
    ],
)
def test_parse_options(options: tuple[str, ...], expected: tuple[int, tuple[int, ...], str, bool]) -> None:
    assert parse_options(options) == expected
    assert parse_options(list(options)) == expected


def test_mount_flag_values() -> None:
    assert (mounts.MS_SYNCHRONOUS, mounts.MS_MANDLOCK, mounts.MS_DIRSYNC) == (16, 64, 128)
    assert (mounts.MS_NOATIME, mounts.MS_NODIRATIME) == (1024, 2048)
    assert (mounts.MS_RELATIME, mounts.MS_STRICTATIME) == (1 << 21, 1 << 24)
    assert (mounts.MS_UNBINDABLE, sc.MS_PRIVATE, mounts.MS_SLAVE, mounts.MS_SHARED) == (
        1 << 17,
        1 << 18,
        1 << 19,
        1 << 20,
    )


def test_entry_of_a_filesystem() -> None:
    e = entry("/t", "tmpfs", "tmpfs", ("nosuid", "mode=1777", "rprivate"))
    assert e == MountEntry("/t", "tmpfs", "tmpfs", NOSUID, (sc.MS_PRIVATE | REC,), "mode=1777", False)
    assert not e.is_cgroup


def test_entry_of_a_bind_mount_by_option() -> None:
    assert entry("/d", "none", "/s", ("rbind", "ro")) == MountEntry(
        "/d", "none", "/s", BIND | REC | RDONLY, bind=True
    )


def test_entry_of_type_bind_is_a_bind_mount() -> None:
    assert entry("/d", "bind", "/s").bind


def test_cgroup_entries() -> None:
    assert entry("/sys/fs/cgroup", "cgroup", "cgroup").is_cgroup
    assert entry("/sys/fs/cgroup", "cgroup2", "cgroup2").is_cgroup
    assert not entry("/sys/fs/cgroup", "tmpfs", "tmpfs").is_cgroup


def test_mount_entry_equality_and_repr() -> None:
    a = MountEntry("/p", "proc", "proc")
    assert a == MountEntry("/p", "proc", "proc", 0, (), "", False)
    assert a != MountEntry("/p", "proc", "proc", RDONLY)
    assert a != ("/p", "proc", "proc")
    assert repr(a) == "MountEntry('/p', 'proc', 'proc', 0, (), '', False)"


# --- runc's defaults ---------------------------------------------------------------------------


def test_default_mounts_are_runcs() -> None:
    assert runc_spec().mounts == DEFAULT_MOUNTS


def test_default_mounts_values() -> None:
    assert DEFAULT_MOUNTS == (
        MountEntry("/proc", "proc", "proc"),
        MountEntry("/dev", "tmpfs", "tmpfs", NOSUID | mounts.MS_STRICTATIME, (), "mode=755,size=65536k"),
        MountEntry(
            "/dev/pts", "devpts", "devpts", NOSUID | NOEXEC, (), "newinstance,ptmxmode=0666,mode=0620,gid=5"
        ),
        MountEntry("/dev/shm", "tmpfs", "shm", NOSUID | NOEXEC | NODEV, (), "mode=1777,size=65536k"),
        MountEntry("/dev/mqueue", "mqueue", "mqueue", NOSUID | NOEXEC | NODEV),
        MountEntry("/sys", "sysfs", "sysfs", NOSUID | NOEXEC | NODEV | RDONLY),
        MountEntry(
            "/sys/fs/cgroup", "cgroup", "cgroup", NOSUID | NOEXEC | NODEV | mounts.MS_RELATIME | RDONLY
        ),
    )


def test_default_masked_and_readonly_paths_are_runcs() -> None:
    c = runc_spec()
    assert c.masked_paths == MASKED_PATHS
    assert c.readonly_paths == READONLY_PATHS


def test_default_devices_are_runcs() -> None:
    assert [(d.path, d.kind, d.major, d.minor, d.mode, d.uid, d.gid) for d in DEFAULT_DEVICES] == [
        ("/dev/null", "c", 1, 3, 0o666, 0, 0),
        ("/dev/zero", "c", 1, 5, 0o666, 0, 0),
        ("/dev/full", "c", 1, 7, 0o666, 0, 0),
        ("/dev/random", "c", 1, 8, 0o666, 0, 0),
        ("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
        ("/dev/tty", "c", 5, 0, 0o666, 0, 0),
    ]


def test_default_capabilities_exclude_the_dangerous_ones() -> None:
    for cap in (21, 16, 19, 12, 17, 25):  # SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, SYS_RAWIO, SYS_TIME
        assert cap not in launch.DEFAULT_CAPABILITIES
    assert len(launch.DEFAULT_CAPABILITIES) == 14
