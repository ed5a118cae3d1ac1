"""The container's root, built through file descriptors.

A rootfs, and any volume shared with another container, may hold symlinks that
point anywhere and may change while pyctr works on it. So no path inside the
root is ever resolved to a string and handed to mount(2) or mkdir(2) to walk
again (the CVE-2021-30465 class): each is opened inside the root, as if the
root were / (openat2's RESOLVE_IN_ROOT, or a walk one component at a time
where the kernel lacks it), missing directories are made beside the fd of
their parent, and mounts go onto /proc/self/fd/N.

The plan is a list of small operations, a pure function of the LaunchSpec,
printed and compared as data (tests/unit/test_rootfs_plan.py); each executes
against a Setup: the open root and the host's /dev/null, verified before the
container could touch anything.
"""

from __future__ import annotations

import errno
import os
import stat

from pyctr_systemd import cgroups
from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import LaunchError
from pyctr_systemd.mounts import (
    DEFAULT_DEVICES,
    DEV_LINKS,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    PROC_MOUNTS,
    Device,
    MountEntry,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.init.launch import LaunchSpec

_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
_S_IFMT = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
_MAX_LINKS = 40  # as the kernel allows
_O_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def fd_path(fd: int) -> str:
    """A path mount(2) takes for an open file: the kernel follows this link to the file itself."""
    return f"/proc/self/fd/{fd}"


def mount_onto(
    target: int, source: str | None, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """mount(2) onto the open file `target`. A directory is entered and mounted on as ".",
    which needs no /proc: /proc itself is mounted this way."""
    if not stat.S_ISDIR(os.fstat(target).st_mode):
        sc.mount(source, fd_path(target), fstype, flags, data)
        return
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(target)
        sc.mount(source, ".", fstype, flags, data)
    finally:
        os.fchdir(here)
        os.close(here)


# --- resolving inside the root -----------------------------------------------------------------

_openat2 = True  # until the kernel says ENOSYS


def open_in(root: int, path: str, no_symlinks: bool = False) -> int:
    """An O_PATH fd of `path` inside the directory `root`, resolved as if `root` were /."""
    global _openat2
    relative = path.lstrip("/") or "."
    resolve = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS | (sc.RESOLVE_NO_SYMLINKS if no_symlinks else 0)
    while _openat2:
        try:
            return sc.openat2(root, relative, sc.O_PATH, resolve)
        except OSError as e:
            if e.errno == errno.ENOSYS:
                _openat2 = False
            elif e.errno != errno.EAGAIN:  # EAGAIN: a rename raced with "..": resolve again
                raise
    return walk(root, path, no_symlinks=no_symlinks)


def walk(root: int, path: str, make_dirs: bool = False, no_symlinks: bool = False) -> int:
    """open_in one component at a time: each opened with O_NOFOLLOW beside the fd of its
    parent, a symlink read and resolved again from the root, ".." never above it.
    With make_dirs, a missing directory is made where the walk stands, so a dangling
    symlink is made real inside the root, never outside."""
    parts = _parts(path)
    stack = [os.dup(root)]  # the directories walked so far, root first
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            fd = _open_component(stack[-1], part, make_dirs)
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                stack.append(fd)
                continue
            target = os.readlink("", dir_fd=fd)
            os.close(fd)
            links += 1
            if no_symlinks or links > _MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            if target.startswith("/"):
                for extra in stack[1:]:
                    os.close(extra)
                del stack[1:]
            parts = _parts(target) + parts
        return os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _open_component(parent: int, name: str, make_dirs: bool) -> int:
    try:
        return os.open(name, _O_PATH, dir_fd=parent)
    except FileNotFoundError:
        if not make_dirs:
            raise
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass  # made meanwhile: whatever it is now is opened without following it
    return os.open(name, _O_PATH, dir_fd=parent)


class Root:
    """The rootfs as an open directory."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # As the kernel names it: what _inside compares. The root already entered is "/", and
        # there, before a joined pid namespace's /proc is mounted, there is no /proc/self.
        self.path = "/" if path == "/" else os.readlink(fd_path(self.fd))

    def open(self, path: str, no_symlinks: bool = False) -> int:
        fd = open_in(self.fd, path, no_symlinks)
        return fd if _openat2 else self._inside(fd)  # RESOLVE_IN_ROOT needs no second look

    def make_dir(self, path: str, no_symlinks: bool = False) -> int:
        """The directory at `path`, made with its missing parents."""
        try:
            return self.open(path, no_symlinks)
        except FileNotFoundError:
            return self._inside(walk(self.fd, path, make_dirs=True, no_symlinks=no_symlinks))

    def reopen(self, target: int) -> int:
        """The mount just made on `target` (an fd opened before shows what is under it),
        reached by where `target` is now, not by the path asked for, which a container
        sharing a volume could have changed since (runc's reopenAfterMount does the same)."""
        where = os.readlink(fd_path(target))
        fd = self.open(os.path.relpath(where, self.path) if where != self.path else "/")
        if _mount_id(fd) == _mount_id(target):
            os.close(fd)
            raise LaunchError(f"container setup failed: the mount on {where} is gone")
        return fd

    def _inside(self, fd: int) -> int:
        """Refuse what a rename moved out of the root while walk() went there."""
        where = os.readlink(fd_path(fd))
        if where != self.path and not where.startswith(self.path.rstrip("/") + "/"):
            os.close(fd)
            raise LaunchError(f"container setup failed: {where} is not inside the rootfs {self.path}")
        return fd

    def make_file(self, path: str) -> int:
        """The file at `path`, made empty if missing (a bind mount's target)."""
        try:
            return self.open(path)
        except FileNotFoundError:
            pass
        parent = self.make_dir(os.path.dirname(path) or "/")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(os.path.basename(path), flags, 0o644, dir_fd=parent))
        except FileExistsError:
            pass  # made meanwhile: resolved from the root like anything else
        finally:
            os.close(parent)
        return self.open(path)

    def close(self) -> None:
        os.close(self.fd)


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise LaunchError("container setup failed: the kernel gives no mount id")  # older than 3.15


class Setup:
    """What the operations work with: the root once opened, and a null device to mask with."""

    def __init__(self) -> None:
        self._root: Root | None = None
        self._null = -1

    @property
    def root(self) -> Root:
        if self._root is None:
            raise LaunchError("container setup failed: the root is not open yet")
        return self._root

    def open_root(self, path: str) -> None:
        if self._root is not None:
            self._root.close()
        self._root = Root(path)

    def use_host_null(self) -> None:
        """The host's /dev/null, opened in the container's new mount namespace (a bind
        mount's source must be in it) before anything of the container's is mounted."""
        self._null = _null_device(os.open("/dev/null", os.O_PATH | os.O_CLOEXEC), "the host's /dev/null")

    @property
    def null(self) -> int:
        """What masks a file: never the image's /dev/null unchecked, which could be a symlink
        to anything (a /proc/sys file, say), but a fd verified to be the null device."""
        if self._null < 0:
            self._null = _null_device(self.root.open("/dev/null"), "the container's /dev/null")
        return self._null

    def close(self) -> None:
        if self._root is not None:
            self._root.close()
            self._root = None
        if self._null >= 0:
            os.close(self._null)
            self._null = -1


def _null_device(fd: int, what: str) -> int:
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise LaunchError(f"container setup failed: cannot mask paths: {what} is not the null device")
    return fd


def execute(ops: list[Op], setup: Setup) -> None:
    # Nodes, directories and files get exactly the modes asked for.
    umask = os.umask(0)
    try:
        for op in ops:
            op.execute(setup)
    finally:
        os.umask(umask)


# --- the operations ----------------------------------------------------------------------------


class _Op:
    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"


class Mount(_Op):
    """A mount on a host path: only for the mount namespace itself and pyctr's own rootfs."""

    __slots__ = ("source", "target", "fstype", "flags", "data")

    def __init__(
        self,
        source: str | None,
        target: str,
        fstype: str | None = None,
        flags: int = 0,
        data: str | None = None,
    ) -> None:
        self.source, self.target, self.fstype, self.flags, self.data = source, target, fstype, flags, data

    def execute(self, setup: Setup) -> None:
        sc.mount(self.source, self.target, self.fstype, self.flags, self.data)


class MakeDir(_Op):
    """A directory on a host path of pyctr's own (the default rootfs's write layer)."""

    __slots__ = ("path", "mode")

    def __init__(self, path: str, mode: int = 0o755) -> None:
        self.path, self.mode = path, mode

    def execute(self, setup: Setup) -> None:
        os.mkdir(self.path, self.mode)


class MakeParentPrivate(_Op):
    """The mount that holds `path` (a host path of the config's, as for Mount) made private."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def execute(self, setup: Setup) -> None:
        path = self.path
        while True:
            try:
                sc.mount(None, path, None, sc.MS_PRIVATE)
                return
            except OSError as e:  # EINVAL: not a mount point; its parent directory may be
                if e.errno != errno.EINVAL or path == "/":
                    raise
            path = os.path.dirname(path)


class OpenRoot(_Op):
    """From here on, paths are inside the root at `path`."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def execute(self, setup: Setup) -> None:
        setup.open_root(self.path)


class ContainerMount(_Op):
    """One config.json mount: its target made inside the root, then mounted as asked."""

    __slots__ = ("entry",)

    def __init__(self, entry: MountEntry) -> None:
        self.entry = entry

    def execute(self, setup: Setup) -> None:
        e, root = self.entry, setup.root
        target = _bind(e, root) if e.bind else _mount(e, root)
        try:
            for flag in e.propagation:
                _remount(root, target, flag)
        finally:
            os.close(target)


def _mount(e: MountEntry, root: Root) -> int:
    """A filesystem mounted as asked; the fd of its target, for what follows."""
    target = _target(root, e.destination, no_symlinks=e.fstype in ("proc", "sysfs"))
    try:
        mount_onto(target, e.source, e.fstype, e.flags, e.data or None)
    except BaseException:
        os.close(target)
        raise
    return target


def _bind(e: MountEntry, root: Root) -> int:
    """A bind mount with its flags; the fd of its target, for what follows."""
    source = os.open(e.source, os.O_PATH | os.O_CLOEXEC)  # a host path the config names
    try:
        is_dir = stat.S_ISDIR(os.fstat(source).st_mode)
        target = root.make_dir(e.destination) if is_dir else root.make_file(e.destination)
        try:
            _refuse_proc(target, e.destination)
            mount_onto(target, fd_path(source), None, e.flags & (sc.MS_BIND | sc.MS_REC))
            rest = e.flags & ~(sc.MS_BIND | sc.MS_REC)
            if rest:
                _remount(root, target, sc.MS_BIND | sc.MS_REMOUNT | rest)
        except BaseException:
            os.close(target)
            raise
    finally:
        os.close(source)
    return target


def _target(root: Root, destination: str, no_symlinks: bool = False) -> int:
    """A mount's target directory, made; proc and sysfs only where the path says, as runc:
    a symlink could put them over anything in the root."""
    try:
        target = root.make_dir(destination, no_symlinks)
    except OSError as error:
        if error.errno != errno.ELOOP or not no_symlinks:
            raise
        raise LaunchError(
            f"container setup failed: cannot mount on {destination}: it is a symlink in the rootfs "
            "(proc and sysfs go on ordinary directories)"
        ) from None
    try:
        _refuse_proc(target, destination)
    except BaseException:
        os.close(target)
        raise
    return target


def _remount(root: Root, target: int, flags: int, data: str | None = None) -> None:
    """A change to the mount just made on `target`: flags, or propagation."""
    fd = root.reopen(target)
    try:
        mount_onto(fd, None, None, flags, data)
    finally:
        os.close(fd)


def _refuse_proc(target: int, destination: str) -> None:
    """A mount target that leads into the container's /proc, however it was spelled: only
    the files runc allows (for lxcfs) may be covered there, and /proc itself."""
    if destination not in PROC_MOUNTS and sc.filesystem_type(target) == sc.PROC_SUPER_MAGIC:
        raise LaunchError(f"container setup failed: cannot mount on {destination}: it is inside /proc")


class CgroupMount(_Op):
    """The container's view of its cgroups at `destination` in the root.

    With a cgroup namespace, fresh mounts of each hierarchy are rooted at the
    unit's cgroup; without one, the unit's own directories are bound there.
    On cgroup v1 they sit in a tmpfs of pyctr's own at `destination`.
    """

    __slots__ = ("destination", "flags", "namespaced")

    def __init__(self, destination: str, flags: int, namespaced: bool) -> None:
        self.destination, self.flags, self.namespaced = destination, flags, namespaced

    def execute(self, setup: Setup) -> None:
        root = setup.root
        hierarchies = [m for m in cgroups.mounts() if m.mountpoint.startswith(cgroups.CGROUP_ROOT)]
        unified = len(hierarchies) == 1 and hierarchies[0].fstype == "cgroup2"
        top = _target(root, self.destination)
        try:
            if unified:
                self._mount(root, hierarchies[0], top)
                return
            mount_onto(top, "tmpfs", "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=755")
            tmpfs = root.reopen(top)
            try:
                for h in hierarchies:
                    name = os.path.basename(h.mountpoint)
                    os.mkdir(name, 0o755, dir_fd=tmpfs)
                    where = os.open(
                        name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmpfs
                    )
                    try:
                        self._mount(root, h, where)
                    finally:
                        os.close(where)
            finally:
                os.close(tmpfs)
            if self.flags & sc.MS_RDONLY:
                _remount(root, top, sc.MS_REMOUNT | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "mode=755")
        finally:
            os.close(top)

    def _mount(self, root: Root, h: cgroups.CgroupMount, where: int) -> None:
        flags = self.flags & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY)
        if self.namespaced:
            data = ",".join(o for o in h.options if o not in ("rw", "ro")) or None
            mount_onto(where, "cgroup", h.fstype, flags, data)
            return
        own = cgroups.of_pid("self")
        if h.key in own:
            mount_onto(where, h.path_of(own[h.key]), None, sc.MS_BIND | sc.MS_REC)
            _remount(root, where, sc.MS_BIND | sc.MS_REMOUNT | flags)


class MakeNode(_Op):
    __slots__ = ("device",)

    def __init__(self, device: Device) -> None:
        self.device = device

    def execute(self, setup: Setup) -> None:
        d = self.device
        parent = setup.root.make_dir(os.path.dirname(d.path))
        name = os.path.basename(d.path)
        try:
            try:
                os.unlink(name, dir_fd=parent)  # the config's device wins over what the rootfs has
            except FileNotFoundError:
                pass
            os.mknod(name, _S_IFMT[d.kind] | (d.mode & 0o7777), os.makedev(d.major, d.minor), dir_fd=parent)
            os.chown(name, d.uid, d.gid, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def __repr__(self) -> str:
        d = self.device
        return f"MakeNode({d.path!r}, {d.kind}, {d.major}, {d.minor})"


class Symlink(_Op):
    """A symlink at `path` inside the root (made there: never on the host)."""

    __slots__ = ("target", "path")

    def __init__(self, target: str, path: str) -> None:
        self.target, self.path = target, path

    def execute(self, setup: Setup) -> None:
        parent = setup.root.make_dir(os.path.dirname(self.path))
        try:
            os.symlink(self.target, os.path.basename(self.path), dir_fd=parent)
        except FileExistsError:
            pass
        finally:
            os.close(parent)


def _existing(root: Root, path: str) -> int:
    """`path` opened in the root, or -1 where the rootfs has nothing to hide or protect."""
    try:
        return root.open(path)
    except FileNotFoundError:
        return -1


class Mask(_Op):
    """Hide a path of the root: an empty read-only tmpfs over a directory, the host's
    /dev/null (never the image's, which could be anything) over anything else."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def execute(self, setup: Setup) -> None:
        target = _existing(setup.root, self.path)
        if target < 0:
            return
        try:
            if stat.S_ISDIR(os.fstat(target).st_mode):
                mount_onto(target, "tmpfs", "tmpfs", sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "size=0")
            else:
                mount_onto(target, fd_path(setup.null), None, sc.MS_BIND)
        finally:
            os.close(target)


class ReadOnly(_Op):
    """A path of the root made read-only."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def execute(self, setup: Setup) -> None:
        target = _existing(setup.root, self.path)
        if target < 0:
            return
        try:
            mount_onto(target, fd_path(target), None, sc.MS_BIND | sc.MS_REC)
            _remount(setup.root, target, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC)
        finally:
            os.close(target)


Op = (
    Mount
    | MakeDir
    | MakeParentPrivate
    | OpenRoot
    | ContainerMount
    | CgroupMount
    | MakeNode
    | Symlink
    | Mask
    | ReadOnly
)


# --- the plan ----------------------------------------------------------------------------------


def _below(path: str, top: str) -> bool:
    return (path + "/").startswith(top.rstrip("/") + "/")


def _under_cgroup(spec: LaunchSpec, path: str) -> bool:
    return any(m.is_cgroup and _below(path, m.destination) for m in spec.mounts)


def plan(spec: LaunchSpec, proc_later: bool = False) -> list[Op]:
    """The mounts and files that turn spec.rootfs into the container's root, before its unit
    exists. With proc_later, /proc and what lies below it wait for proc_plan."""
    r = spec.rootfs
    dev = f"{r}/dev"
    # An unbindable rootfs cannot be bound onto itself: that comes after the root is entered
    # (init.main). A shared one stays in the host's peer groups, as runc keeps it, so that
    # a shared volume propagates both ways; but the mount holding the rootfs is made
    # private, or the rootfs bind below would show on the host and pivot_root would refuse it.
    first = spec.propagation if not spec.propagation & MS_UNBINDABLE else sc.MS_REC | MS_SLAVE
    ops: list[Op] = [Mount(None, "/", None, first)]
    if first & MS_SHARED:
        ops.append(MakeParentPrivate(r))
    if spec.ephemeral:
        # An overlay over pyctr's own rootfs, its upper layer on a tmpfs that sits on
        # the rootfs's /dev (any directory of it would do: the overlay hides it).
        ops += [
            Mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0755"),
            MakeDir(f"{dev}/upper"),
            MakeDir(f"{dev}/work"),
            Mount("overlay", r, "overlay", 0, f"lowerdir={r},upperdir={dev}/upper,workdir={dev}/work"),
        ]
    else:
        ops.append(Mount(r, r, None, sc.MS_BIND | sc.MS_REC))  # pivot_root needs a mount point
    ops.append(OpenRoot(r))

    def later(path: str) -> bool:
        return proc_later and _below(path, "/proc")

    ops += [ContainerMount(m) for m in spec.mounts if not m.is_cgroup and not later(m.destination)]
    # A fresh /dev gets runc's devices and links; a bound one (the host's, say) is left as it is.
    fresh_dev = any(m.destination == "/dev" and not m.bind for m in spec.mounts)
    if fresh_dev:
        configured = {d.path for d in spec.devices}
        ops += [MakeNode(d) for d in DEFAULT_DEVICES if d.path not in configured]
    ops += [MakeNode(d) for d in spec.devices]
    if fresh_dev:
        ops += [Symlink(target, f"/dev/{name}") for name, target in DEV_LINKS]
    ops += [Mask(p) for p in spec.masked_paths if not _under_cgroup(spec, p) and not later(p)]
    ops += [ReadOnly(p) for p in spec.readonly_paths if not _under_cgroup(spec, p) and not later(p)]
    return ops


def late_plan(spec: LaunchSpec) -> list[Op]:
    """What needs the unit: cgroup mounts, and masks on paths below them."""
    namespaced = spec.namespace(sc.CLONE_NEWCGROUP) is not None
    ops: list[Op] = [CgroupMount(m.destination, m.flags, namespaced) for m in spec.mounts if m.is_cgroup]
    ops += [Mask(p) for p in spec.masked_paths if _under_cgroup(spec, p)]
    ops += [ReadOnly(p) for p in spec.readonly_paths if _under_cgroup(spec, p)]
    return ops


def proc_plan(spec: LaunchSpec) -> list[Op]:
    """/proc and below, inside the entered root: for a process that joins a pid namespace, whose
    /proc only a member of that namespace can mount, and which must not be seen in there
    before its root is the container's."""
    ops: list[Op] = [OpenRoot("/")]
    ops += [ContainerMount(m) for m in spec.mounts if not m.is_cgroup and _below(m.destination, "/proc")]
    ops += [Mask(p) for p in spec.masked_paths if _below(p, "/proc")]
    ops += [ReadOnly(p) for p in spec.readonly_paths if _below(p, "/proc")]
    return ops
