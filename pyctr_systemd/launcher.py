"""The container's first process: namespaces, mounts, root, then exec of the payload.

pyctr forks a child as PID 1 of a new pid namespace. While systemd creates the
container's unit and moves the child into it (mostly a wait: the kernel's cgroup
migration waits for an RCU grace period, 10-20 ms), the child prepares: new
mount, uts, ipc and net namespaces, /proc, /dev and /sys in the rootfs, hostname,
loopback, pivot_root. Told to go, it takes its cgroup namespace (now rooted at
the unit's cgroup), trims its capabilities and execs the payload, so no Python
stays in the container and nothing of the payload runs outside its limits.

The mounts are a plan of small operations, a pure function of the spec, so it
can be read and tested without root; syscalls live in pyctr_systemd.syscalls.
Only cheap modules are imported here: this is the start path.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import errno
import os

from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import LaunchError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default set: enough for ordinary root payloads, without SYS_ADMIN,
# SYS_MODULE, SYS_PTRACE, NET_ADMIN and the rest (capabilities(7) numbers).
DEFAULT_CAPABILITIES = frozenset(
    {
        0,  # CHOWN
        1,  # DAC_OVERRIDE
        3,  # FOWNER
        4,  # FSETID
        5,  # KILL
        6,  # SETGID
        7,  # SETUID
        8,  # SETPCAP
        10,  # NET_BIND_SERVICE
        13,  # NET_RAW
        18,  # SYS_CHROOT
        27,  # MKNOD
        29,  # AUDIT_WRITE
        31,  # SETFCAP
    }
)

# The kernel interfaces runc and docker hide or make read-only by default.
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)

NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET
_NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
_S_IFCHR = 0o020000


class LaunchSpec:
    """What the container's process is: root, command, environment, identity."""

    __slots__ = ("rootfs", "argv", "env", "cwd", "hostname", "pivot", "ephemeral")

    def __init__(
        self,
        *,
        rootfs: str,
        argv: tuple[str, ...],
        env: tuple[str, ...],
        cwd: str = "/",
        hostname: str = "",
        pivot: bool = True,
        ephemeral: bool = False,
    ) -> None:
        self.rootfs = rootfs  # "" until the default rootfs is resolved
        self.argv, self.env = argv, env  # env: "KEY=VALUE" strings
        self.cwd, self.hostname, self.pivot = cwd, hostname, pivot
        # Writes go to a layer of their own, dropped at exit: the shared default
        # rootfs must stay as it was built.
        self.ephemeral = ephemeral


# --- the plan: small operations, compared and printed as data --------------------


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


class MakeDevice(_Op):
    __slots__ = ("path", "major", "minor")

    def __init__(self, path: str, major: int, minor: int) -> None:
        self.path, self.major, self.minor = path, major, minor

    def execute(self) -> None:
        os.mknod(self.path, _S_IFCHR | 0o666, os.makedev(self.major, self.minor))
        os.chmod(self.path, 0o666)  # past the umask


class Symlink(_Op):
    __slots__ = ("target", "path")

    def __init__(self, target: str, path: str) -> None:
        self.target, self.path = target, path

    def execute(self) -> None:
        os.symlink(self.target, self.path)


class Mask(_Op):
    """Hide a path: an empty read-only tmpfs over a directory, /dev/null over a file."""

    __slots__ = ("path", "dev_null")

    def __init__(self, path: str, dev_null: str) -> None:
        self.path, self.dev_null = path, dev_null

    def execute(self) -> None:
        if os.path.isdir(self.path):
            sc.mount("tmpfs", self.path, "tmpfs", sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC, "size=0")
        elif os.path.exists(self.path):
            sc.mount(self.dev_null, self.path, None, sc.MS_BIND)


class ReadOnly(_Op):
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def execute(self) -> None:
        if os.path.exists(self.path):
            sc.mount(self.path, self.path, None, sc.MS_BIND | sc.MS_REC)
            sc.mount(None, self.path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _NOSUID_NODEV_NOEXEC)


Op = Mount | MakeDir | MakeDevice | Symlink | Mask | ReadOnly


def plan(spec: LaunchSpec) -> list[Op]:
    """The mounts and files that turn spec.rootfs into the container's root."""
    r = spec.rootfs
    dev = f"{r}/dev"
    ops: list[Op] = [Mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)]
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
    ops += [
        MakeDir(f"{r}/proc"),
        Mount("proc", f"{r}/proc", "proc", _NOSUID_NODEV_NOEXEC),
        MakeDir(f"{r}/sys"),
        Mount("sysfs", f"{r}/sys", "sysfs", _NOSUID_NODEV_NOEXEC | sc.MS_RDONLY),
        MakeDir(dev),
        Mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID, "mode=755,size=65536k"),
    ]
    ops += [MakeDevice(f"{dev}/{name}", major, minor) for name, major, minor in DEVICES]
    ops += [
        MakeDir(f"{dev}/pts"),
        Mount(
            "devpts",
            f"{dev}/pts",
            "devpts",
            sc.MS_NOSUID | sc.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        MakeDir(f"{dev}/shm", 0o1777),
        Mount("shm", f"{dev}/shm", "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k"),
    ]
    ops += [Symlink(target, f"{dev}/{name}") for name, target in DEV_LINKS]
    ops += [Mask(f"{r}{p}", f"{dev}/null") for p in MASKED_PATHS]
    ops += [ReadOnly(f"{r}{p}") for p in READONLY_PATHS]
    return ops


# --- inside the child -----------------------------------------------------------


def _enter_root(spec: LaunchSpec) -> None:
    os.chdir(spec.rootfs)
    if spec.pivot:
        # pivot_root(".", ".") stacks the old root under the new one; detach it.
        sc.pivot_root(".", ".")
        sc.umount(".", sc.MNT_DETACH)
    else:
        sc.mount(spec.rootfs, "/", None, sc.MS_MOVE)
        os.chroot(".")
    os.chdir("/")


def prepare(spec: LaunchSpec) -> None:
    """Everything that needs no unit yet: namespaces, the new root, the cwd."""
    sc.unshare(NAMESPACES)
    for op in plan(spec):
        op.execute()
    sc.sethostname(spec.hostname)
    sc.set_loopback_up()
    _enter_root(spec)
    os.makedirs(spec.cwd, exist_ok=True)  # as runc does for process.cwd
    os.chdir(spec.cwd)


def _drop_capabilities() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in DEFAULT_CAPABILITIES:
            sc.drop_bounding_capability(cap)
    sc.clear_inheritable_capabilities()


def start(keep_fd: int) -> None:
    """In the unit now: take the cgroup namespace, trim capabilities, clean up for exec."""
    sc.unshare(sc.CLONE_NEWCGROUP)  # its root is the cgroup systemd moved us into
    _drop_capabilities()
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)


def exec_payload(spec: LaunchSpec) -> None:
    """Exec the payload, searching PATH as runc does: the container's PATH, inside its root.

    Not os.execvpe: it imports `warnings` on first use, and after pivot_root
    the host's Python library is out of reach.
    """
    env = dict(e.split("=", 1) for e in spec.env)
    name, argv = spec.argv[0], list(spec.argv)
    if not name:
        raise FileNotFoundError(2, "No such file or directory", name)
    if "/" in name:
        os.execve(name, argv, env)
    denied: OSError | None = None
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        try:
            os.execve(os.path.join(directory or ".", name), argv, env)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as e:  # keep looking; report it if nothing else runs
            denied = e
    raise denied or FileNotFoundError(2, "No such file or directory", name)


# --- the parent's handle on the child --------------------------------------------


class Child:
    """The forked child; it prepares, then waits for `go` to start the payload."""

    def __init__(self, pid: int, go_fd: int, error_fd: int) -> None:
        self.pid, self._go_fd, self._error_fd = pid, go_fd, error_fd
        self._error: LaunchError | None = None

    def go(self) -> None:
        try:
            os.write(self._go_fd, b"g")
        except BrokenPipeError:
            pass  # it failed while preparing; error() will say why
        os.close(self._go_fd)

    def abort(self) -> LaunchError | None:
        """Let the child exit (it sees the go pipe close), reap it, say why it failed."""
        os.close(self._go_fd)
        os.waitpid(self.pid, 0)
        return self.error()

    def error(self) -> LaunchError | None:
        """After exit: the child's failure before or at exec, if it had one."""
        if self._error_fd >= 0:
            data = os.read(self._error_fd, 65536)
            os.close(self._error_fd)
            self._error_fd = -1
            if data:
                code, _, message = data.decode(errors="replace").partition("\0")
                self._error = LaunchError(message, int(code))
        return self._error


def spawn(spec: LaunchSpec) -> Child:
    """Fork the child as PID 1 of a new pid namespace; it starts preparing at once."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.unshare(sc.CLONE_NEWPID)  # only our next child enters it
        try:
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                os.close(err_r)
                _child(spec, go_r, err_w)
        finally:
            # Later children of ours (if any) belong in our own pid namespace again.
            sc.setns(own_pidns, sc.CLONE_NEWPID)
    except BaseException:
        os.close(go_w)
        os.close(err_r)
        raise
    finally:
        os.close(own_pidns)
        os.close(go_r)
        os.close(err_w)
    return Child(pid, go_w, err_r)


def _child(spec: LaunchSpec, go_r: int, err_w: int) -> None:
    """Never returns: ends in exec, or in _exit with the reason on err_w."""
    code, message = 125, "container setup failed"
    try:
        # A session of its own: no controlling terminal to push input into
        # (TIOCSTI), no process group shared with pyctr's caller (kill(0, ...)).
        os.setsid()
        prepare(spec)
        if os.read(go_r, 1) != b"g":
            os._exit(125)  # pyctr gave up; it knows why
        start(err_w)
        try:
            exec_payload(spec)
        except OSError as e:
            code = 127 if isinstance(e, FileNotFoundError) else 126
            message = f"cannot run {spec.argv[0]!r}: {e.strerror}"
    except OSError as e:
        message = f"container setup failed: {e.strerror}"
        if e.filename and str(e.filename) not in message:
            message += f" ({e.filename})"
    except KeyboardInterrupt:
        message = "container setup interrupted"
    except BaseException as e:  # anything else must still end in _exit, never return
        message = f"container setup failed: {e!r}"
    finally:
        try:
            os.write(err_w, f"{code}\0{message}".encode())
        finally:
            os._exit(code)
