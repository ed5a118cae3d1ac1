"""pyctr_systemd.init.rootfs: the root's plan, as data, and what each operation does to a tree."""

from __future__ import annotations

import json
import marshal
from pathlib import Path

from pyctr_systemd import mounts, spec
from pyctr_systemd import syscalls as sc
from pyctr_systemd.init import launch as launch_wire
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.init.rootfs import (
    CgroupMount,
    ContainerMount,
    MakeDir,
    MakeNode,
    MakeParentPrivate,
    Mask,
    Mount,
    OpenRoot,
    ReadOnly,
    Setup,
    Symlink,
    execute,
    late_plan,
    plan,
    proc_plan,
)
from pyctr_systemd.mounts import DEFAULT_DEVICES, DEFAULT_MOUNTS, MASKED_PATHS, READONLY_PATHS, Device, entry
from pyctr_systemd.seccomp_profile import SyscallFilter

DATA = Path(__file__).resolve().parent / "data"
NOSUID, NODEV, NOEXEC, RDONLY = sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC, sc.MS_RDONLY
BIND, REC = sc.MS_BIND, sc.MS_REC
PROC, DEV, PTS, SHM, MQUEUE, SYS, CGROUP = DEFAULT_MOUNTS
DEV_LINKS = [
    Symlink("/proc/self/fd", "/dev/fd"),
    Symlink("/proc/self/fd/0", "/dev/stdin"),
    Symlink("/proc/self/fd/1", "/dev/stdout"),
    Symlink("/proc/self/fd/2", "/dev/stderr"),
    Symlink("pts/ptmx", "/dev/ptmx"),
]


def launch(rootfs: str = "/r", **changes: object) -> LaunchSpec:
    return LaunchSpec(rootfs=rootfs, argv=("/bin/sh",), env=("PATH=/bin",), **changes)  # type: ignore[arg-type]


def runc_spec() -> spec.Config:
    return spec.parse(json.loads((DATA / "runc-spec.json").read_text()), "/b")


def test_plan_of_pyctr_runs_default_spec() -> None:
    assert plan(launch()) == [
        Mount(None, "/", None, REC | sc.MS_PRIVATE),
        Mount("/r", "/r", None, BIND | REC),
        OpenRoot("/r"),
        ContainerMount(PROC),
        ContainerMount(DEV),
        ContainerMount(PTS),
        ContainerMount(SHM),
        ContainerMount(MQUEUE),
        ContainerMount(SYS),
        *[MakeNode(d) for d in DEFAULT_DEVICES],
        *DEV_LINKS,
        *[Mask(p) for p in MASKED_PATHS],
        *[ReadOnly(p) for p in READONLY_PATHS],
    ]


def test_late_plan_of_pyctr_runs_default_spec() -> None:
    assert late_plan(launch()) == [
        CgroupMount("/sys/fs/cgroup", NOSUID | NOEXEC | NODEV | mounts.MS_RELATIME | RDONLY, True),
    ]


def test_late_plan_without_a_cgroup_namespace_binds() -> None:
    namespaces = ((sc.CLONE_NEWPID, ""), (sc.CLONE_NEWNS, ""))
    assert late_plan(launch(namespaces=namespaces)) == [CgroupMount("/sys/fs/cgroup", CGROUP.flags, False)]


def test_plan_of_runcs_config_json() -> None:
    s = spec.launch_spec(runc_spec())
    ops = plan(s)
    assert ops[:3] == [
        Mount(None, "/", None, REC | sc.MS_PRIVATE),
        Mount("/b/rootfs", "/b/rootfs", None, BIND | REC),
        OpenRoot("/b/rootfs"),
    ]
    assert [op.entry.destination for op in ops if isinstance(op, ContainerMount)] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ]
    assert not any(isinstance(op, CgroupMount) for op in ops)
    assert late_plan(s) == [CgroupMount("/sys/fs/cgroup", CGROUP.flags, False)]


def test_ephemeral_root_is_an_overlay_on_a_tmpfs() -> None:
    assert plan(launch(ephemeral=True))[:6] == [
        Mount(None, "/", None, REC | sc.MS_PRIVATE),
        Mount("tmpfs", "/r/dev", "tmpfs", NOSUID | NODEV, "mode=0755"),
        MakeDir("/r/dev/upper"),
        MakeDir("/r/dev/work"),
        Mount("overlay", "/r", "overlay", 0, "lowerdir=/r,upperdir=/r/dev/upper,workdir=/r/dev/work"),
        OpenRoot("/r"),
    ]
    assert plan(launch(ephemeral=True))[6] == ContainerMount(PROC)


def test_the_root_is_opened_after_its_own_mount() -> None:
    # An fd opened before the bind or overlay mount would show what is under it.
    ops = plan(launch())
    assert ops.index(OpenRoot("/r")) == 2
    assert all(isinstance(op, Mount) for op in ops[:2])


def test_shared_root_propagation_keeps_the_hosts_peers_but_not_for_the_rootfs() -> None:
    # Shared, as runc keeps it: a shared volume then propagates both ways. The mount under
    # the rootfs goes private before the rootfs is bound, which must not show on the host.
    assert plan(launch(propagation=REC | mounts.MS_SHARED))[:3] == [
        Mount(None, "/", None, REC | mounts.MS_SHARED),
        MakeParentPrivate("/r"),
        Mount("/r", "/r", None, sc.MS_BIND | REC),
    ]
    assert plan(launch(propagation=REC | mounts.MS_SLAVE))[:2] == [
        Mount(None, "/", None, REC | mounts.MS_SLAVE),
        Mount("/r", "/r", None, sc.MS_BIND | REC),
    ]
    assert plan(launch(propagation=REC | mounts.MS_UNBINDABLE))[0] == Mount(
        None, "/", None, REC | mounts.MS_SLAVE
    )


def test_mounts_come_in_config_order() -> None:
    b = entry("/b", "tmpfs", "tmpfs")
    a = entry("/a", "proc", "proc")
    c = entry("/c", "bind", "/src", ("rbind",))
    ops = plan(launch(mounts=(b, a, c), masked_paths=(), readonly_paths=()))
    assert ops[3:] == [ContainerMount(b), ContainerMount(a), ContainerMount(c)]


def test_no_devices_without_a_dev_mount() -> None:
    ops = plan(launch(mounts=(PROC, SYS)))
    assert not any(isinstance(op, MakeNode) for op in ops)


def test_configured_devices_are_made_without_a_dev_mount() -> None:
    fuse = Device("/dev/fuse", "c", 10, 229)
    ops = plan(launch(mounts=(PROC,), devices=(fuse,)))
    assert [op for op in ops if isinstance(op, MakeNode)] == [MakeNode(fuse)]


def test_configured_device_replaces_a_default_one() -> None:
    null = Device("/dev/null", "c", 1, 3, 0o600)
    fuse = Device("/dev/fuse", "c", 10, 229)
    ops = plan(launch(devices=(fuse, null)))
    assert [op for op in ops if isinstance(op, MakeNode)] == [
        *[MakeNode(d) for d in DEFAULT_DEVICES if d.path != "/dev/null"],
        MakeNode(fuse),
        MakeNode(null),
    ]


def test_a_bind_mounted_dev_gets_no_devices_or_links() -> None:
    # runc sets up /dev (devices, links) only when /dev is not a bind mount (needsSetupDev):
    # MakeNode would otherwise unlink and remake the nodes of the host's /dev.
    host_dev = entry("/dev", "bind", "/dev", ("rbind",))
    ops = plan(launch(mounts=(PROC, host_dev, SYS)))
    assert ContainerMount(host_dev) in ops
    assert [op for op in ops if isinstance(op, MakeNode | Symlink)] == []


def test_dev_entries_come_after_dev_is_mounted_and_masks_after_proc() -> None:
    ops = plan(launch())
    dev = ops.index(ContainerMount(DEV))
    proc = ops.index(ContainerMount(PROC))
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
    assert early == [Mask("/proc/kcore"), Mask("/sys/fs/cgroupfoo"), ReadOnly("/proc/sys")]
    assert late_plan(s) == [
        CgroupMount("/sys/fs/cgroup", CGROUP.flags, True),
        Mask("/sys/fs/cgroup/secret"),
        ReadOnly("/sys/fs/cgroup"),
        ReadOnly("/sys/fs/cgroup/a/b"),
    ]


def test_proc_waits_for_the_root_when_a_pid_namespace_is_joined() -> None:
    # The process that joins a pid namespace is forked into it only once its root is the
    # container's; /proc, which only a member of the namespace can mount, comes after.
    uptime = entry("/proc/uptime", "bind", "/host/uptime", ("bind",))
    s = launch(mounts=(*DEFAULT_MOUNTS, uptime), masked_paths=("/proc/kcore", "/sys/firmware"))
    early = plan(s, proc_later=True)
    assert ContainerMount(PROC) not in early and ContainerMount(uptime) not in early
    assert Mask("/proc/kcore") not in early and Mask("/sys/firmware") in early
    assert not any(isinstance(op, ReadOnly) and op.path.startswith("/proc") for op in early)
    assert proc_plan(s) == [
        OpenRoot("/"),
        ContainerMount(PROC),
        ContainerMount(uptime),
        Mask("/proc/kcore"),
        *[ReadOnly(p) for p in READONLY_PATHS],
    ]


def test_cgroup_mounts_are_only_in_the_late_plan() -> None:
    v2 = entry("/sys/fs/cgroup", "cgroup2", "cgroup2", ("ro",))
    s = launch(mounts=(PROC, v2), masked_paths=(), readonly_paths=())
    assert not any(isinstance(op, CgroupMount) or op == ContainerMount(v2) for op in plan(s))
    assert late_plan(s) == [CgroupMount("/sys/fs/cgroup", RDONLY, True)]


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
    assert Mask("/proc/kcore") in ops
    assert Mask("/sys/firmware") in ops
    assert ReadOnly("/proc/sys") in ops
    assert ReadOnly("/proc/sysrq-trigger") in ops


def test_ops_print_as_data() -> None:
    assert repr(MakeDir("/r/proc")) == "MakeDir('/r/proc', 493)"
    assert repr(Mount(None, "/", None, REC)) == "Mount(None, '/', None, 16384, None)"
    assert repr(OpenRoot("/r")) == "OpenRoot('/r',)"
    assert repr(Symlink("pts/ptmx", "/dev/ptmx")) == "Symlink('pts/ptmx', '/dev/ptmx')"
    assert repr(MakeNode(DEFAULT_DEVICES[0])) == "MakeNode('/dev/null', c, 1, 3)"
    assert repr(Mask("/proc/kcore")) == "Mask('/proc/kcore',)"


def test_ops_compare_by_type_and_fields() -> None:
    assert MakeDir("/a") == MakeDir("/a", 0o755)
    assert MakeDir("/a") != MakeDir("/a", 0o700)
    assert ReadOnly("/a") != MakeDir("/a")
    assert Mask("/a") != ReadOnly("/a")


def test_launch_spec_namespace() -> None:
    s = launch(namespaces=((sc.CLONE_NEWNS, ""), (sc.CLONE_NEWNET, "/run/netns/x")))
    assert s.namespace(sc.CLONE_NEWNS) == ""
    assert s.namespace(sc.CLONE_NEWNET) == "/run/netns/x"
    assert s.namespace(sc.CLONE_NEWPID) is None


# --- operations on a real tree (no mounts: those are the integration tests') -------------------


def test_dev_links_and_nodes_stay_inside_the_root(tmp_path: Path) -> None:
    # A rootfs's /dev that is a symlink to an absolute path must not make anything on the host.
    root, outside = tmp_path / "rootfs", tmp_path / "host-etc"
    root.mkdir()
    outside.mkdir()
    (root / "dev").symlink_to(outside)
    setup = Setup()
    setup.open_root(str(root))
    try:
        execute([op for op in plan(launch(rootfs=str(root))) if isinstance(op, Symlink)], setup)
    finally:
        setup.close()
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (root / str(outside).lstrip("/")).iterdir()) == [
        "fd",
        "ptmx",
        "stderr",
        "stdin",
        "stdout",
    ]


def test_the_launchers_wire_carries_the_spec_but_its_seccomp_filter() -> None:
    # The filter reaches the launcher compiled, with GO (init.sync); the rest goes by marshal.
    s = launch(
        hostname="h", devices=(Device("/dev/fuse", "c", 10, 229),), seccomp=SyscallFilter("SCMP_ACT_LOG")
    )
    back = launch_wire.from_wire(marshal.loads(marshal.dumps(launch_wire.to_wire(s))))  # type: ignore[arg-type]
    assert back.seccomp is None
    assert [
        getattr(back, n)
        for n in LaunchSpec.__slots__
        if n not in ("seccomp", "capabilities", "mounts", "devices")
    ] == [
        getattr(s, n)
        for n in LaunchSpec.__slots__
        if n not in ("seccomp", "capabilities", "mounts", "devices")
    ]
    assert back.mounts == s.mounts and [d.path for d in back.devices] == ["/dev/fuse"]
