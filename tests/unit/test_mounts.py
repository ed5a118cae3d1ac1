"""pyctr_systemd.mounts: mount options, runc's defaults, the root's plan, and resolve_in."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from pyctr_systemd import launcher, mounts, spec
from pyctr_systemd import syscalls as sc
from pyctr_systemd.launcher import LaunchSpec
from pyctr_systemd.mounts import (
    DEFAULT_DEVICES,
    DEFAULT_MOUNTS,
    MASKED_PATHS,
    READONLY_PATHS,
    CgroupMount,
    ContainerMount,
    Device,
    MakeDir,
    MakeNode,
    Mask,
    Mount,
    MountEntry,
    ReadOnly,
    Symlink,
    entry,
    late_plan,
    parse_options,
    plan,
    resolve_in,
)

DATA = Path(__file__).resolve().parent / "data"
NOSUID, NODEV, NOEXEC, RDONLY = sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC, sc.MS_RDONLY
BIND, REC = sc.MS_BIND, sc.MS_REC
PROC, DEV, PTS, SHM, MQUEUE, SYS, CGROUP = DEFAULT_MOUNTS
DEV_LINKS = [
    Symlink("/r", "/proc/self/fd", "/dev/fd"),
    Symlink("/r", "/proc/self/fd/0", "/dev/stdin"),
    Symlink("/r", "/proc/self/fd/1", "/dev/stdout"),
    Symlink("/r", "/proc/self/fd/2", "/dev/stderr"),
    Symlink("/r", "pts/ptmx", "/dev/ptmx"),
]


def launch(rootfs: str = "/r", **changes: object) -> LaunchSpec:
    return LaunchSpec(rootfs=rootfs, argv=("/bin/sh",), env=("PATH=/bin",), **changes)  # type: ignore[arg-type]


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
        assert cap not in launcher.DEFAULT_CAPABILITIES
    assert len(launcher.DEFAULT_CAPABILITIES) == 14


# --- the plan ----------------------------------------------------------------------------------


def test_plan_of_pyctr_runs_default_spec() -> None:
    assert plan(launch()) == [
        Mount(None, "/", None, REC | sc.MS_PRIVATE),
        Mount("/r", "/r", None, BIND | REC),
        ContainerMount("/r", PROC),
        ContainerMount("/r", DEV),
        ContainerMount("/r", PTS),
        ContainerMount("/r", SHM),
        ContainerMount("/r", MQUEUE),
        ContainerMount("/r", SYS),
        *[MakeNode("/r", d) for d in DEFAULT_DEVICES],
        *DEV_LINKS,
        *[Mask("/r", p) for p in MASKED_PATHS],
        *[ReadOnly("/r", p) for p in READONLY_PATHS],
    ]


def test_late_plan_of_pyctr_runs_default_spec() -> None:
    assert late_plan(launch()) == [
        CgroupMount("/r", "/sys/fs/cgroup", NOSUID | NOEXEC | NODEV | mounts.MS_RELATIME | RDONLY, True),
    ]


def test_late_plan_without_a_cgroup_namespace_binds() -> None:
    namespaces = ((sc.CLONE_NEWPID, ""), (sc.CLONE_NEWNS, ""))
    assert late_plan(launch(namespaces=namespaces)) == [
        CgroupMount("/r", "/sys/fs/cgroup", CGROUP.flags, False)
    ]


def test_plan_of_runcs_config_json() -> None:
    s = spec.launch_spec(runc_spec())
    ops = plan(s)
    assert ops[0] == Mount(None, "/", None, REC | sc.MS_PRIVATE)
    assert ops[1] == Mount("/b/rootfs", "/b/rootfs", None, BIND | REC)
    assert [op.entry.destination for op in ops if isinstance(op, ContainerMount)] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ]
    assert not any(isinstance(op, CgroupMount) for op in ops)
    assert late_plan(s) == [CgroupMount("/b/rootfs", "/sys/fs/cgroup", CGROUP.flags, False)]


def test_ephemeral_root_is_an_overlay_on_a_tmpfs() -> None:
    assert plan(launch(ephemeral=True))[:5] == [
        Mount(None, "/", None, REC | sc.MS_PRIVATE),
        Mount("tmpfs", "/r/dev", "tmpfs", NOSUID | NODEV, "mode=0755"),
        MakeDir("/r/dev/upper"),
        MakeDir("/r/dev/work"),
        Mount("overlay", "/r", "overlay", 0, "lowerdir=/r,upperdir=/r/dev/upper,workdir=/r/dev/work"),
    ]
    assert plan(launch(ephemeral=True))[5] == ContainerMount("/r", PROC)


def test_shared_root_propagation_starts_as_slave() -> None:
    assert plan(launch(propagation=REC | mounts.MS_SHARED))[0] == Mount(
        None, "/", None, REC | mounts.MS_SLAVE
    )
    assert plan(launch(propagation=REC | mounts.MS_SLAVE))[0] == Mount(None, "/", None, REC | mounts.MS_SLAVE)


def test_mounts_come_in_config_order() -> None:
    b = entry("/b", "tmpfs", "tmpfs")
    a = entry("/a", "proc", "proc")
    c = entry("/c", "bind", "/src", ("rbind",))
    ops = plan(launch(mounts=(b, a, c), masked_paths=(), readonly_paths=()))
    assert ops == [
        Mount(None, "/", None, REC | sc.MS_PRIVATE),
        Mount("/r", "/r", None, BIND | REC),
        ContainerMount("/r", b),
        ContainerMount("/r", a),
        ContainerMount("/r", c),
    ]


def test_no_devices_without_a_dev_mount() -> None:
    ops = plan(launch(mounts=(PROC, SYS)))
    assert not any(isinstance(op, MakeNode) for op in ops)


def test_configured_devices_are_made_without_a_dev_mount() -> None:
    fuse = Device("/dev/fuse", "c", 10, 229)
    ops = plan(launch(mounts=(PROC,), devices=(fuse,)))
    assert [op for op in ops if isinstance(op, MakeNode)] == [MakeNode("/r", fuse)]


def test_configured_device_replaces_a_default_one() -> None:
    null = Device("/dev/null", "c", 1, 3, 0o600)
    fuse = Device("/dev/fuse", "c", 10, 229)
    ops = plan(launch(devices=(fuse, null)))
    assert [op for op in ops if isinstance(op, MakeNode)] == [
        *[MakeNode("/r", d) for d in DEFAULT_DEVICES if d.path != "/dev/null"],
        MakeNode("/r", fuse),
        MakeNode("/r", null),
    ]


def test_a_bind_mounted_dev_gets_no_devices_or_links() -> None:
    # runc sets up /dev (devices, links) only when /dev is not a bind mount (needsSetupDev):
    # MakeNode would otherwise unlink and remake the nodes of the host's /dev.
    host_dev = entry("/dev", "bind", "/dev", ("rbind",))
    ops = plan(launch(mounts=(PROC, host_dev, SYS)))
    assert ContainerMount("/r", host_dev) in ops
    assert [op for op in ops if isinstance(op, MakeNode | Symlink)] == []


def test_dev_entries_come_after_dev_is_mounted_and_masks_after_proc() -> None:
    ops = plan(launch())
    dev = ops.index(ContainerMount("/r", DEV))
    proc = ops.index(ContainerMount("/r", PROC))
    first_node = next(i for i, op in enumerate(ops) if isinstance(op, MakeNode))
    first_link = next(i for i, op in enumerate(ops) if isinstance(op, Symlink))
    first_mask = next(i for i, op in enumerate(ops) if isinstance(op, Mask | ReadOnly))
    assert dev < first_node < first_link < first_mask
    assert proc < first_mask
    assert max(i for i, op in enumerate(ops) if isinstance(op, ContainerMount)) < first_node


def test_masks_below_a_cgroup_mount_wait_for_the_late_plan() -> None:
    s = launch(
        masked_paths=("/proc/kcore", "/sys/fs/cgroup/secret", "/sys/fs/cgroupfoo"),
        readonly_paths=("/proc/sys", "/sys/fs/cgroup", "/sys/fs/cgroup/a/b"),
    )
    early = [op for op in plan(s) if isinstance(op, Mask | ReadOnly)]
    assert early == [
        Mask("/r", "/proc/kcore"),
        Mask("/r", "/sys/fs/cgroupfoo"),
        ReadOnly("/r", "/proc/sys"),
    ]
    assert late_plan(s) == [
        CgroupMount("/r", "/sys/fs/cgroup", CGROUP.flags, True),
        Mask("/r", "/sys/fs/cgroup/secret"),
        ReadOnly("/r", "/sys/fs/cgroup"),
        ReadOnly("/r", "/sys/fs/cgroup/a/b"),
    ]


def test_cgroup_mounts_are_only_in_the_late_plan() -> None:
    v2 = entry("/sys/fs/cgroup", "cgroup2", "cgroup2", ("ro",))
    s = launch(mounts=(PROC, v2), masked_paths=(), readonly_paths=())
    assert not any(isinstance(op, CgroupMount) or op == ContainerMount("/r", v2) for op in plan(s))
    assert late_plan(s) == [CgroupMount("/r", "/sys/fs/cgroup", RDONLY, True)]


def test_late_plan_without_cgroup_mounts_is_empty() -> None:
    assert late_plan(launch(mounts=(PROC,))) == []


def test_plan_mounts_fresh_proc_sys_and_a_minimal_dev() -> None:
    by_target = {op.entry.destination: op.entry for op in plan(launch()) if isinstance(op, ContainerMount)}
    assert by_target["/proc"].fstype == "proc"
    assert by_target["/sys"].flags & RDONLY
    assert by_target["/dev"].fstype == "tmpfs"
    assert by_target["/dev/pts"].fstype == "devpts"
    assert "newinstance" in by_target["/dev/pts"].data
    assert by_target["/dev/shm"].fstype == "tmpfs"


def test_plan_masks_and_protects_kernel_interfaces() -> None:
    ops = plan(launch())
    assert Mask("/r", "/proc/kcore") in ops
    assert Mask("/r", "/sys/firmware") in ops
    assert ReadOnly("/r", "/proc/sys") in ops
    assert ReadOnly("/r", "/proc/sysrq-trigger") in ops


def test_ops_print_as_data() -> None:
    assert repr(MakeDir("/r/proc")) == "MakeDir('/r/proc', 493)"
    assert repr(Mount(None, "/", None, REC)) == "Mount(None, '/', None, 16384, None)"
    assert repr(Symlink("/r", "pts/ptmx", "/dev/ptmx")) == "Symlink('/r', 'pts/ptmx', '/dev/ptmx')"
    assert repr(MakeNode("/r", DEFAULT_DEVICES[0])) == "MakeNode('/r/dev/null', c, 1, 3)"
    assert repr(Mask("/r", "/proc/kcore")) == "Mask('/r', '/proc/kcore')"


def test_ops_compare_by_type_and_fields() -> None:
    assert MakeDir("/a") == MakeDir("/a", 0o755)
    assert MakeDir("/a") != MakeDir("/a", 0o700)
    assert ReadOnly("/r", "/a") != MakeDir("/a")
    assert Mask("/r", "/a") != ReadOnly("/r", "/a")


def test_launch_spec_namespace() -> None:
    s = launch(namespaces=((sc.CLONE_NEWNS, ""), (sc.CLONE_NEWNET, "/run/netns/x")))
    assert s.namespace(sc.CLONE_NEWNS) == ""
    assert s.namespace(sc.CLONE_NEWNET) == "/run/netns/x"
    assert s.namespace(sc.CLONE_NEWPID) is None


def test_dev_links_stay_inside_the_rootfs(tmp_path: Path) -> None:
    # A rootfs's /dev that is a symlink to an absolute path must not make the links on the host.
    root, outside = tmp_path / "rootfs", tmp_path / "host-etc"
    root.mkdir()
    outside.mkdir()
    (root / "dev").symlink_to(outside)
    for op in plan(launch(rootfs=str(root))):
        if isinstance(op, Symlink):
            op.execute()
    assert os.listdir(outside) == []


# --- resolve_in ------------------------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    for d in ("usr/lib", "etc", "a/b", "data"):
        (root / d).mkdir(parents=True)
    return root


def resolve(root: Path, path: str) -> str:
    return resolve_in(str(root), path)


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/", ""),
        ("", ""),
        ("/etc", "etc"),
        ("/etc/passwd", "etc/passwd"),
        ("etc/passwd", "etc/passwd"),
        ("/a/./b//c/", "a/b/c"),
        ("/a/b/../c", "a/c"),
        ("/../../etc", "etc"),
        ("/a/../../../..", ""),
        ("/missing/dir/x", "missing/dir/x"),
    ],
)
def test_resolve_in_plain_paths(rootfs: Path, path: str, inside: str) -> None:
    assert resolve(rootfs, path) == (f"{rootfs}/{inside}" if inside else str(rootfs))


def test_resolve_in_absolute_symlink_stays_in_the_root(rootfs: Path) -> None:
    (rootfs / "etc" / "mtab").symlink_to("/proc/self/mounts")
    (rootfs / "host").symlink_to("/etc")
    assert resolve(rootfs, "/etc/mtab") == f"{rootfs}/proc/self/mounts"
    assert resolve(rootfs, "/host/shadow") == f"{rootfs}/etc/shadow"


def test_resolve_in_symlink_to_slash(rootfs: Path) -> None:
    (rootfs / "up").symlink_to("/")
    assert resolve(rootfs, "/up/etc") == f"{rootfs}/etc"
    assert resolve(rootfs, "/up") == str(rootfs)


def test_resolve_in_relative_symlinks(rootfs: Path) -> None:
    (rootfs / "usr" / "lib64").symlink_to("lib")
    (rootfs / "lib").symlink_to("usr/lib")
    assert resolve(rootfs, "/usr/lib64/x.so") == f"{rootfs}/usr/lib/x.so"
    assert resolve(rootfs, "/lib/x.so") == f"{rootfs}/usr/lib/x.so"


def test_resolve_in_dotdot_symlinks_never_escape(rootfs: Path) -> None:
    (rootfs / "a" / "b" / "out").symlink_to("../../../../../../etc")
    (rootfs / "a" / "far").symlink_to("../../../../..")
    assert resolve(rootfs, "/a/b/out/passwd") == f"{rootfs}/etc/passwd"
    assert resolve(rootfs, "/a/far/tmp") == f"{rootfs}/tmp"


def test_resolve_in_dotdot_after_a_symlink_goes_up_from_its_target(rootfs: Path) -> None:
    (rootfs / "link").symlink_to("/a/b")
    assert resolve(rootfs, "/link/../x") == f"{rootfs}/a/x"


def test_resolve_in_chained_and_dangling_symlinks(rootfs: Path) -> None:
    (rootfs / "l1").symlink_to("l2")
    (rootfs / "l2").symlink_to("/data")
    (rootfs / "dangling").symlink_to("/nowhere/at/all")
    assert resolve(rootfs, "/l1/f") == f"{rootfs}/data/f"
    assert resolve(rootfs, "/dangling") == f"{rootfs}/nowhere/at/all"


def test_resolve_in_follows_a_chain_of_40(rootfs: Path) -> None:
    for i in range(40):
        (rootfs / f"s{i}").symlink_to(f"s{i + 1}")
    assert resolve(rootfs, "/s0") == f"{rootfs}/s40"


def test_resolve_in_chain_of_41_is_a_loop(rootfs: Path) -> None:
    for i in range(41):
        (rootfs / f"s{i}").symlink_to(f"s{i + 1}")
    with pytest.raises(OSError) as e:
        resolve(rootfs, "/s0")
    assert e.value.errno == errno.ELOOP


def test_resolve_in_symlink_loops_raise(rootfs: Path) -> None:
    (rootfs / "self").symlink_to("self")
    (rootfs / "ping").symlink_to("/pong")
    (rootfs / "pong").symlink_to("ping")
    (rootfs / "deep").symlink_to("deep/x")
    for path in ("/self", "/ping/x", "/deep"):
        with pytest.raises(OSError) as e:
            resolve(rootfs, path)
        assert e.value.errno == errno.ELOOP


def test_resolve_in_results_stay_under_the_root(rootfs: Path) -> None:
    (rootfs / "x").symlink_to("/../../../..")
    (rootfs / "etc" / "y").symlink_to("../../x/../../etc/../..")
    for path in ("/x", "/x/a", "/etc/y", "/etc/y/z", "/../x/../etc"):
        result = resolve(rootfs, path)
        assert result == str(rootfs) or result.startswith(f"{rootfs}/")
