"""Mount entries as the runtime-spec writes them, turned into mount(2) arguments.

A config.json mount is {destination, type, source, options}; the options mix
mount flags ("ro", "nosuid"), propagation ("rprivate") and filesystem data
("mode=755"). Parsing them once into numbers keeps the launcher a plain
executor. `pyctr run` uses the same entries: DEFAULT_MOUNTS is what `pyctr spec`
writes (runc's defaults), so both ways of running a container get one root.
The plan that sets up a container's root is here too: small operations, a pure
function of the spec, printed and compared as data, so it can be read and
tested without root. Stdlib only: this module is on the container start path.
"""

from __future__ import annotations

import errno
import os

from pyctr_systemd import cgroups
from pyctr_systemd import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.launcher import LaunchSpec

MS_SYNCHRONOUS, MS_MANDLOCK, MS_DIRSYNC = 16, 64, 128
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MS_UNBINDABLE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 19, 1 << 20

# option -> (flags to set, flags to clear); runc's table (mount(8) names).
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (sc.MS_RDONLY, 0),
    "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0),
    "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0),
    "exec": (0, sc.MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "mand": (MS_MANDLOCK, 0),
    "nomand": (0, MS_MANDLOCK),
    "noatime": (MS_NOATIME, 0),
    "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0),
    "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0),
    "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME),
    "remount": (sc.MS_REMOUNT, 0),
    "defaults": (0, 0),
}
FLAG_NAMES = tuple(_FLAGS)
PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "shared": MS_SHARED,
    "slave": MS_SLAVE,
    "unbindable": MS_UNBINDABLE,
}
PROPAGATION.update({f"r{name}": flag | sc.MS_REC for name, flag in list(PROPAGATION.items())})
# Options of podman and crun that are not mount(2) options; honoured elsewhere or harmless.
IGNORED = frozenset({"tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z"})
CGROUP_FSTYPES = ("cgroup", "cgroup2")


class MountEntry:
    """One mount of the container, ready for mount(2)."""

    __slots__ = ("destination", "fstype", "source", "flags", "propagation", "data", "bind")

    def __init__(
        self,
        destination: str,
        fstype: str,
        source: str,
        flags: int = 0,
        propagation: tuple[int, ...] = (),
        data: str = "",
        bind: bool = False,
    ) -> None:
        self.destination, self.fstype, self.source = destination, fstype, source
        self.flags, self.propagation, self.data, self.bind = flags, propagation, data, bind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MountEntry) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__
        )

    def __repr__(self) -> str:
        return f"MountEntry({', '.join(repr(getattr(self, s)) for s in self.__slots__)})"

    @property
    def is_cgroup(self) -> bool:
        return self.fstype in CGROUP_FSTYPES


def parse_options(options: list[str] | tuple[str, ...]) -> tuple[int, tuple[int, ...], str, bool]:
    """(flags, propagation changes, data, bind) from a mount's option list."""
    flags, propagation, data, bind = 0, [], [], False
    for option in options:
        if option in ("bind", "rbind"):
            bind = True
            flags |= sc.MS_BIND | (sc.MS_REC if option == "rbind" else 0)
        elif option in _FLAGS:
            set_, clear = _FLAGS[option]
            flags = (flags | set_) & ~clear
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option not in IGNORED:
            data.append(option)
    return flags, tuple(propagation), ",".join(data), bind


def entry(destination: str, fstype: str, source: str, options: tuple[str, ...] = ()) -> MountEntry:
    flags, propagation, data, bind = parse_options(options)
    return MountEntry(destination, fstype, source, flags, propagation, data, bind or fstype == "bind")


# runc's default mounts (`runc spec`), which `pyctr run` uses as they are.
DEFAULT_MOUNTS = (
    entry("/proc", "proc", "proc"),
    entry("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    entry(
        "/dev/pts",
        "devpts",
        "devpts",
        ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
    ),
    entry("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
    entry("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    entry("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    entry("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", "relatime", "ro")),
)

# The kernel interfaces runc hides or makes read-only by default.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


# Created in every container's /dev, as runc does (name, major, minor).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
_S_IFCHR, _S_IFBLK, _S_IFIFO = 0o020000, 0o060000, 0o010000


class Device:
    """A device node to create in the container (linux.devices)."""

    __slots__ = ("path", "kind", "major", "minor", "mode", "uid", "gid")

    def __init__(
        self, path: str, kind: str, major: int, minor: int, mode: int = 0o666, uid: int = 0, gid: int = 0
    ) -> None:
        self.path, self.kind, self.major, self.minor = path, kind, major, minor
        self.mode, self.uid, self.gid = mode, uid, gid


DEFAULT_DEVICES = tuple(Device(f"/dev/{name}", "c", major, minor) for name, major, minor in DEVICES)


# --- the plan: small operations, compared and printed as data --------------------


def resolve_in(root: str, path: str) -> str:
    """`path` inside `root`, following symlinks as if `root` were /.

    A symlink in a rootfs may point anywhere (/etc, ../../..); resolved this way
    it can never lead out of the rootfs, as runc's securejoin ensures.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, "too many symlinks", candidate)
            link = os.readlink(candidate)
            if link.startswith("/"):
                done = []
            parts = [p for p in link.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return os.path.join(root, *done)


class _Op:
    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"


class Mount(_Op):
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

    def execute(self) -> None:
        sc.mount(self.source, self.target, self.fstype, self.flags, self.data)


class MakeDir(_Op):
    __slots__ = ("path", "mode")

    def __init__(self, path: str, mode: int = 0o755) -> None:
        self.path, self.mode = path, mode

    def execute(self) -> None:
        # A symlink in a rootfs may point anywhere on the host; never follow it.
        if os.path.islink(self.path):
            raise OSError(errno.ELOOP, "refusing to mount over a symlink in the rootfs", self.path)
        os.makedirs(self.path, self.mode, exist_ok=True)


class ContainerMount(_Op):
    """One config.json mount: its target made inside the rootfs, then mounted as asked."""

    __slots__ = ("root", "entry")

    def __init__(self, root: str, entry: MountEntry) -> None:
        self.root, self.entry = root, entry

    def execute(self) -> None:
        e = self.entry
        target = resolve_in(self.root, e.destination)
        if e.bind and not os.path.isdir(e.source):
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            if not os.path.exists(target):
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        else:
            os.makedirs(target, 0o755, exist_ok=True)
        if e.bind:
            sc.mount(e.source, target, None, e.flags & (sc.MS_BIND | sc.MS_REC))
            rest = e.flags & ~(sc.MS_BIND | sc.MS_REC)
            if rest:
                sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | rest)
        else:
            sc.mount(e.source, target, e.fstype, e.flags, e.data or None)
        for flag in e.propagation:
            sc.mount(None, target, None, flag)


class CgroupMount(_Op):
    """The container's view of its cgroups at `destination` in the rootfs `root`.

    With a cgroup namespace, fresh mounts of each hierarchy are rooted at the
    unit's cgroup; without one, the unit's own directories are bound there.
    """

    __slots__ = ("root", "destination", "flags", "namespaced")

    def __init__(self, root: str, destination: str, flags: int, namespaced: bool) -> None:
        self.root, self.destination, self.flags, self.namespaced = root, destination, flags, namespaced

    def execute(self) -> None:
        flags = self.flags & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY)
        hierarchies = [m for m in cgroups.mounts() if m.mountpoint.startswith(cgroups.CGROUP_ROOT)]
        own = cgroups.of_pid("self")
        target = resolve_in(self.root, self.destination)
        os.makedirs(target, 0o755, exist_ok=True)
        unified = len(hierarchies) == 1 and hierarchies[0].fstype == "cgroup2"
        if not unified:
            sc.mount("tmpfs", target, "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=755")
        for h in hierarchies:
            where = target if unified else os.path.join(target, os.path.basename(h.mountpoint))
            os.makedirs(where, 0o755, exist_ok=True)
            if self.namespaced:
                data = ",".join(o for o in h.options if o not in ("rw", "ro")) or None
                sc.mount("cgroup", where, h.fstype, flags, data)
            elif h.key in own:
                sc.mount(h.path_of(own[h.key]), where, None, sc.MS_BIND | sc.MS_REC)
                sc.mount(None, where, None, sc.MS_BIND | sc.MS_REMOUNT | flags)
        if not unified and flags & sc.MS_RDONLY:
            sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "mode=755")


class MakeNode(_Op):
    __slots__ = ("root", "device")

    def __init__(self, root: str, device: Device) -> None:
        self.root, self.device = root, device

    def execute(self) -> None:
        d = self.device
        path = resolve_in(self.root, d.path)
        if os.path.lexists(path):
            os.unlink(path)  # the config's device wins over what the rootfs has
        kind = {"c": _S_IFCHR, "u": _S_IFCHR, "b": _S_IFBLK, "p": _S_IFIFO}[d.kind]
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.mknod(path, kind | (d.mode & 0o7777), os.makedev(d.major, d.minor))
        os.chmod(path, d.mode & 0o7777)  # past the umask
        os.chown(path, d.uid, d.gid)

    def __repr__(self) -> str:
        d = self.device
        return f"MakeNode({self.root + d.path!r}, {d.kind}, {d.major}, {d.minor})"


class Symlink(_Op):
    """A symlink at `path` inside the rootfs `root` (resolved there: never on the host)."""

    __slots__ = ("root", "target", "path")

    def __init__(self, root: str, target: str, path: str) -> None:
        self.root, self.target, self.path = root, target, path

    def execute(self) -> None:
        parent = resolve_in(self.root, os.path.dirname(self.path))
        os.makedirs(parent, 0o755, exist_ok=True)
        where = os.path.join(parent, os.path.basename(self.path))
        if not os.path.lexists(where):
            os.symlink(self.target, where)


class Mask(_Op):
    """Hide a path of the rootfs: an empty read-only tmpfs over a directory, /dev/null over a file."""

    __slots__ = ("root", "path")

    def __init__(self, root: str, path: str) -> None:
        self.root, self.path = root, path

    def execute(self) -> None:
        target = resolve_in(self.root, self.path)
        if os.path.isdir(target):
            sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "size=0")
        elif os.path.exists(target):
            sc.mount(resolve_in(self.root, "/dev/null"), target, None, sc.MS_BIND)


class ReadOnly(_Op):
    """A path of the rootfs made read-only."""

    __slots__ = ("root", "path")

    def __init__(self, root: str, path: str) -> None:
        self.root, self.path = root, path

    def execute(self) -> None:
        target = resolve_in(self.root, self.path)
        if os.path.exists(target):
            sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC)


Op = Mount | MakeDir | ContainerMount | CgroupMount | MakeNode | Symlink | Mask | ReadOnly


def _under_cgroup(spec: LaunchSpec, path: str) -> bool:
    return any(m.is_cgroup and (path + "/").startswith(m.destination + "/") for m in spec.mounts)


def plan(spec: LaunchSpec) -> list[Op]:
    """The mounts and files that turn spec.rootfs into the container's root, before its unit exists."""
    r = spec.rootfs
    dev = f"{r}/dev"
    # pivot_root refuses a shared parent mount: shared comes after it (launcher).
    first = spec.propagation if not spec.propagation & MS_SHARED else sc.MS_REC | MS_SLAVE
    ops: list[Op] = [Mount(None, "/", None, first)]
    if spec.ephemeral:
        # An overlay over the rootfs, its upper layer on a tmpfs that sits on the
        # rootfs's own /dev (any directory of it would do: the overlay hides it).
        ops += [
            Mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=0755"),
            MakeDir(f"{dev}/upper"),
            MakeDir(f"{dev}/work"),
            Mount("overlay", r, "overlay", 0, f"lowerdir={r},upperdir={dev}/upper,workdir={dev}/work"),
        ]
    else:
        ops.append(Mount(r, r, None, sc.MS_BIND | sc.MS_REC))  # pivot_root needs a mount point
    ops += [ContainerMount(r, m) for m in spec.mounts if not m.is_cgroup]
    # A fresh /dev gets runc's devices and links; a bound one (the host's, say) is left as it is.
    fresh_dev = any(m.destination == "/dev" and not m.bind for m in spec.mounts)
    if fresh_dev:
        configured = {d.path for d in spec.devices}
        ops += [MakeNode(r, d) for d in DEFAULT_DEVICES if d.path not in configured]
    ops += [MakeNode(r, d) for d in spec.devices]
    if fresh_dev:
        ops += [Symlink(r, target, f"/dev/{name}") for name, target in DEV_LINKS]
    ops += [Mask(r, p) for p in spec.masked_paths if not _under_cgroup(spec, p)]
    ops += [ReadOnly(r, p) for p in spec.readonly_paths if not _under_cgroup(spec, p)]
    return ops


def late_plan(spec: LaunchSpec) -> list[Op]:
    """What needs the unit: cgroup mounts, and masks on paths below them."""
    r, namespaced = spec.rootfs, spec.namespace(sc.CLONE_NEWCGROUP) is not None
    ops: list[Op] = [CgroupMount(r, m.destination, m.flags, namespaced) for m in spec.mounts if m.is_cgroup]
    ops += [Mask(r, p) for p in spec.masked_paths if _under_cgroup(spec, p)]
    ops += [ReadOnly(r, p) for p in spec.readonly_paths if _under_cgroup(spec, p)]
    return ops
