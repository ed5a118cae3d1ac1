"""Mount entries as the runtime-spec writes them, turned into mount(2) arguments.

A config.json mount is {destination, type, source, options}; the options mix
mount flags ("ro", "nosuid"), propagation ("rprivate") and filesystem data
("mode=755"). Parsing them once into numbers keeps the launcher a plain
executor. `pyctr run` uses the same entries: DEFAULT_MOUNTS is what `pyctr spec`
writes (runc's defaults), so both ways of running a container get one root.
The plan that builds the root from them is pyctr_systemd.init.rootfs's.
Stdlib only: this module is on the container start path.
"""

from __future__ import annotations

from pyctr_systemd import syscalls as sc

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

# A mount over anything in /proc could fake what the kernel says there (cap_last_cap,
# a pid's files), so only these may be mounted there: /proc itself, and the files
# lxcfs stands in for, which runc allows too.
PROC_FILES = (
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
)
PROC_MOUNTS = ("/proc", *PROC_FILES)


# Created in every container's /dev, as runc does (name, major, minor).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


class Device:
    """A device node to create in the container (linux.devices)."""

    __slots__ = ("path", "kind", "major", "minor", "mode", "uid", "gid")

    def __init__(
        self, path: str, kind: str, major: int, minor: int, mode: int = 0o666, uid: int = 0, gid: int = 0
    ) -> None:
        self.path, self.kind, self.major, self.minor = path, kind, major, minor
        self.mode, self.uid, self.gid = mode, uid, gid


DEFAULT_DEVICES = tuple(Device(f"/dev/{name}", "c", major, minor) for name, major, minor in DEVICES)
