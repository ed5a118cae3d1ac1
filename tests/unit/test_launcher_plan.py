from pyctr_systemd import launcher
from pyctr_systemd import syscalls as sc
from pyctr_systemd.launcher import LaunchSpec, MakeDevice, MakeDir, Mask, Mount, ReadOnly, Symlink

SPEC = LaunchSpec(rootfs="/r", argv=("/bin/sh",), env=("PATH=/bin",), hostname="h")


def test_plan_starts_private_and_binds_the_root() -> None:
    ops = launcher.plan(SPEC)
    assert ops[0] == Mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    assert ops[1] == Mount("/r", "/r", None, sc.MS_BIND | sc.MS_REC)


def test_plan_mounts_fresh_proc_sys_and_a_minimal_dev() -> None:
    ops = launcher.plan(SPEC)
    mounts = {op.target: op for op in ops if isinstance(op, Mount)}
    assert mounts["/r/proc"].fstype == "proc"
    assert mounts["/r/sys"].flags & sc.MS_RDONLY
    assert mounts["/r/dev"].fstype == "tmpfs"
    assert mounts["/r/dev/pts"].fstype == "devpts"
    assert "newinstance" in (mounts["/r/dev/pts"].data or "")
    assert mounts["/r/dev/shm"].fstype == "tmpfs"
    devices = {op.path: (op.major, op.minor) for op in ops if isinstance(op, MakeDevice)}
    assert devices == {
        "/r/dev/null": (1, 3),
        "/r/dev/zero": (1, 5),
        "/r/dev/full": (1, 7),
        "/r/dev/random": (1, 8),
        "/r/dev/urandom": (1, 9),
        "/r/dev/tty": (5, 0),
    }
    assert Symlink("pts/ptmx", "/r/dev/ptmx") in ops


def test_dev_entries_come_after_dev_is_mounted_and_proc_masks_after_proc() -> None:
    ops = launcher.plan(SPEC)
    dev_mount = ops.index(Mount("tmpfs", "/r/dev", "tmpfs", sc.MS_NOSUID, "mode=755,size=65536k"))
    first_device = next(i for i, op in enumerate(ops) if isinstance(op, MakeDevice))
    assert dev_mount < first_device
    proc_mount = next(i for i, op in enumerate(ops) if isinstance(op, Mount) and op.target == "/r/proc")
    assert all(i > proc_mount for i, op in enumerate(ops) if isinstance(op, Mask | ReadOnly))


def test_plan_masks_and_protects_kernel_interfaces() -> None:
    ops = launcher.plan(SPEC)
    assert Mask("/r/proc/kcore", "/r/dev/null") in ops
    assert Mask("/r/sys/firmware", "/r/dev/null") in ops
    assert ReadOnly("/r/proc/sys") in ops
    assert ReadOnly("/r/proc/sysrq-trigger") in ops


def test_ops_print_as_data() -> None:
    assert repr(MakeDir("/r/proc")) == "MakeDir('/r/proc', 493)"


def test_default_capabilities_exclude_the_dangerous_ones() -> None:
    for cap in (21, 16, 19, 12, 17, 25):  # SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, SYS_RAWIO, SYS_TIME
        assert cap not in launcher.DEFAULT_CAPABILITIES
    assert len(launcher.DEFAULT_CAPABILITIES) == 14
