"""The container's first process: namespaces, mounts, root, identity, then exec.

pyctr forks a child, PID 1 of a new pid namespace (or a member of a given one).
The child works in stages, each confirmed over a pipe to its parent:

  prepare   namespaces, the rootfs's mounts, hostname, sysctls -> "p"
            (meanwhile systemd creates the unit and moves the child into it)
  go        cgroup namespace and cgroup mounts (both need the unit), masked
            and read-only paths, createContainer hooks, pivot_root, cwd, the
            executable found, the console -> "c": the container is created
  start     the exec fifo opened (`pyctr start`) or "s" read from the parent;
            startContainer hooks, user, capabilities, exec of the payload

so no Python stays in the container, nothing of the payload runs outside its
limits, and a missing executable is reported by `create`, as runc does.

The mounts are a plan of small operations (pyctr_systemd.mounts), a pure
function of the spec; syscalls live in pyctr_systemd.syscalls.
Only cheap modules are imported here: this is the start path of `pyctr run`.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import errno
import os

from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import LaunchError
from pyctr_systemd.mounts import (
    DEFAULT_MOUNTS,
    MASKED_PATHS,
    READONLY_PATHS,
    Device,
    MountEntry,
    late_plan,
    plan,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.hooks import Hook

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

# Namespaces in the order they are joined or made; pid is done by spawn(), cgroup after "go".
NAMESPACE_ORDER = (sc.CLONE_NEWUTS, sc.CLONE_NEWIPC, sc.CLONE_NEWNET, sc.CLONE_NEWNS)
DEFAULT_NAMESPACES = (
    (sc.CLONE_NEWPID, ""),
    (sc.CLONE_NEWNS, ""),
    (sc.CLONE_NEWUTS, ""),
    (sc.CLONE_NEWIPC, ""),
    (sc.CLONE_NEWNET, ""),
    (sc.CLONE_NEWCGROUP, ""),
)


class Capabilities:
    """The five capability sets of the payload (capabilities(7) numbers)."""

    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient")

    def __init__(
        self,
        bounding: frozenset[int] = DEFAULT_CAPABILITIES,
        effective: frozenset[int] = DEFAULT_CAPABILITIES,
        permitted: frozenset[int] = DEFAULT_CAPABILITIES,
        inheritable: frozenset[int] = frozenset(),
        ambient: frozenset[int] = frozenset(),
    ) -> None:
        self.bounding, self.effective, self.permitted = bounding, effective, permitted
        self.inheritable, self.ambient = inheritable, ambient


class LaunchSpec:
    """Everything the container's process is; defaults are `pyctr run`'s."""

    __slots__ = (
        "rootfs",
        "argv",
        "env",
        "cwd",
        "hostname",
        "pivot",
        "ephemeral",
        "readonly_root",
        "mounts",
        "namespaces",
        "propagation",
        "masked_paths",
        "readonly_paths",
        "devices",
        "sysctl",
        "uid",
        "gid",
        "additional_gids",
        "umask",
        "capabilities",
        "rlimits",
        "no_new_privileges",
        "oom_score_adj",
        "terminal",
        "console_size",
        "console_socket",
        "exec_fifo",
        "create_container_hooks",
        "start_container_hooks",
        "hook_state",
    )

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
        readonly_root: bool = False,
        mounts: tuple[MountEntry, ...] = DEFAULT_MOUNTS,
        namespaces: tuple[tuple[int, str], ...] = DEFAULT_NAMESPACES,
        propagation: int = sc.MS_REC | sc.MS_PRIVATE,
        masked_paths: tuple[str, ...] = MASKED_PATHS,
        readonly_paths: tuple[str, ...] = READONLY_PATHS,
        devices: tuple[Device, ...] = (),
        sysctl: tuple[tuple[str, str], ...] = (),
        uid: int = 0,
        gid: int = 0,
        additional_gids: tuple[int, ...] = (),
        umask: int | None = None,
        capabilities: Capabilities | None = None,
        rlimits: tuple[tuple[int, int, int], ...] = (),
        no_new_privileges: bool = False,
        oom_score_adj: int | None = None,
        terminal: bool = False,
        console_size: tuple[int, int] | None = None,
        console_socket: str = "",
        exec_fifo: str = "",
        create_container_hooks: tuple[Hook, ...] = (),
        start_container_hooks: tuple[Hook, ...] = (),
        hook_state: dict[str, object] | None = None,
    ) -> None:
        self.rootfs = rootfs  # "" until the default rootfs is resolved
        self.argv, self.env = argv, env  # env: "KEY=VALUE" strings
        self.cwd, self.hostname, self.pivot = cwd, hostname, pivot
        # Writes go to a layer of their own, dropped at exit: the shared default
        # rootfs must stay as it was built.
        self.ephemeral, self.readonly_root = ephemeral, readonly_root
        self.mounts, self.namespaces, self.propagation = mounts, namespaces, propagation
        self.masked_paths, self.readonly_paths = masked_paths, readonly_paths
        self.devices, self.sysctl = devices, sysctl
        self.uid, self.gid, self.additional_gids, self.umask = uid, gid, additional_gids, umask
        self.capabilities = capabilities or Capabilities()
        self.rlimits, self.no_new_privileges, self.oom_score_adj = rlimits, no_new_privileges, oom_score_adj
        self.terminal, self.console_size, self.console_socket = terminal, console_size, console_socket
        self.exec_fifo = exec_fifo  # "": the parent says when to start
        self.create_container_hooks, self.start_container_hooks = (
            create_container_hooks,
            start_container_hooks,
        )
        self.hook_state = hook_state  # the state hooks read on stdin; pid filled in by the child

    def namespace(self, flag: int) -> str | None:
        """ "" to make the namespace, a path to join it, None to share pyctr's."""
        for kind, path in self.namespaces:
            if kind == flag:
                return path
        return None


# --- inside the child -----------------------------------------------------------


def _open_namespaces(spec: LaunchSpec) -> dict[int, int]:
    """Open every namespace to join first: once in the container's mount
    namespace, the host's /proc paths are gone."""
    return {
        flag: os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        for flag, path in spec.namespaces
        if path and flag != sc.CLONE_NEWPID
    }


def _enter_namespaces(spec: LaunchSpec, fds: dict[int, int], stage: tuple[int, ...]) -> None:
    """Join the namespaces given by path, then make the new ones, in one unshare."""
    new = 0
    for flag in stage:
        if flag in fds:
            sc.setns(fds.pop(flag), flag)
        elif spec.namespace(flag) == "":
            new |= flag
    if new:
        sc.unshare(new)


def _write_sysctls(spec: LaunchSpec) -> None:
    # /proc/sys shows the writer's own net, ipc and uts namespaces.
    for key, value in spec.sysctl:
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


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
    sc.mount(None, "/", None, spec.propagation)  # linux.rootfsPropagation, for the new root
    if spec.readonly_root:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def prepare(spec: LaunchSpec, ns_fds: dict[int, int]) -> None:
    """Everything that needs no unit yet: namespaces, mounts, hostname, sysctls."""
    _enter_namespaces(spec, ns_fds, NAMESPACE_ORDER)
    for resource, soft, hard in spec.rlimits:
        sc.setrlimit(resource, soft, hard)
    if spec.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(spec.oom_score_adj))
    if spec.namespace(sc.CLONE_NEWNS) == "":
        for op in plan(spec):
            op.execute()
    if spec.hostname:
        sc.sethostname(spec.hostname)
    _write_sysctls(spec)
    if spec.namespace(sc.CLONE_NEWNET) == "":
        sc.set_loopback_up()


def find_executable(spec: LaunchSpec) -> str:
    """The payload's path, searched in the container's PATH inside its root, as runc does.

    Not shutil.which or os.execvpe: they import modules on first use, and
    after pivot_root the host's Python library is out of reach.
    """
    name = spec.argv[0]
    if not name:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
    if "/" in name:
        if not os.path.exists(name):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
        return name
    env = dict(e.split("=", 1) for e in spec.env if "=" in e)
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(errno.ENOENT, "executable file not found in $PATH", name)


def _set_identity(spec: LaunchSpec) -> None:
    """User, groups and capabilities, in the order the kernel allows (runc's too)."""
    caps = spec.capabilities
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in caps.bounding:
            sc.drop_bounding_capability(cap)
    sc.set_keep_capabilities(True)
    os.setgroups(list(spec.additional_gids))
    os.setresgid(spec.gid, spec.gid, spec.gid)
    os.setresuid(spec.uid, spec.uid, spec.uid)
    sc.set_keep_capabilities(False)

    def mask(s: frozenset[int]) -> int:
        return sum(1 << c for c in s if c <= last)

    sc.set_capabilities(mask(caps.effective), mask(caps.permitted), mask(caps.inheritable))
    # The kernel takes an ambient capability only if it is permitted and
    # inheritable; runc's own default spec lists ambient ones that are not.
    sc.set_ambient_capabilities(caps.ambient & caps.permitted & caps.inheritable)
    if spec.no_new_privileges:
        sc.set_no_new_privileges()
    if spec.umask is not None:
        os.umask(spec.umask)


def _open_console(spec: LaunchSpec, sock: object) -> None:
    """A new pty in the container's devpts: its master goes to whoever holds the console
    socket (conmon, podman, `pyctr run`), its other end becomes the payload's terminal."""
    import fcntl
    import struct
    import termios

    master, tty = os.openpty()
    if spec.console_size:
        rows, cols = spec.console_size
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    sock.sendmsg([os.ttyname(tty).encode()], [(1, 1, struct.pack("i", master))])  # type: ignore[attr-defined]
    sock.close()  # type: ignore[attr-defined]
    os.close(master)
    fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(tty, fd)
    if tty > 2:
        os.close(tty)


def _connect_console(path: str) -> object:
    # _open_console runs after pivot_root, where the host's Python library is out of reach.
    import fcntl  # noqa: F401
    import socket
    import struct  # noqa: F401
    import termios  # noqa: F401

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def _run_hooks(spec: LaunchSpec, hooks: tuple[Hook, ...], status: str) -> None:
    if hooks:
        from pyctr_systemd.hooks import run_all

        run_all(hooks, {**(spec.hook_state or {}), "status": status})


def _wait_for_start(spec: LaunchSpec, fifo: int, from_parent: int) -> None:
    if fifo >= 0:
        # Blocks until `pyctr start` opens the fifo for reading.
        fd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo)
    elif os.read(from_parent, 1) != b"s":
        os._exit(125)  # pyctr gave up; it knows why


def _reset_for_exec(keep_fd: int) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)


# --- the parent's handle on the child --------------------------------------------


class Child:
    """The forked child; the parent paces it through its stages."""

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid, self._to, self._from = pid, to_child, from_child
        self._error: LaunchError | None = None

    def expect(self, stage: bytes) -> None:
        """Wait for the child to report `stage` done; raise its error if it failed instead
        (it is not reaped: abort() does that)."""
        data = os.read(self._from, 1)
        if data != stage:
            raise self.error(data) or LaunchError("container setup failed")

    def send(self, message: bytes) -> None:
        try:
            os.write(self._to, message)
        except BrokenPipeError:
            pass  # it failed; expect() or error() will say why

    def abort(self) -> LaunchError | None:
        """End the child (it has not exec'd the payload yet), reap it, say why it failed."""
        self.close()
        try:
            os.kill(self.pid, _signal.SIGKILL)  # it may be stuck in a hook or a console connect
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        return self.error()

    def close(self) -> None:
        if self._to >= 0:
            os.close(self._to)
            self._to = -1

    def error(self, head: bytes = b"") -> LaunchError | None:
        """The child's failure before or at exec, if it had one (read up to its exit or exec)."""
        if self._from >= 0:
            data = head + _read_all(self._from)
            os.close(self._from)
            self._from = -1
            if data.startswith(b"E"):
                code, _, message = data[1:].decode(errors="replace").partition("\0")
                self._error = LaunchError(message, int(code))
        return self._error


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def spawn(spec: LaunchSpec) -> Child:
    """Fork the child into its pid namespace; it starts preparing at once."""
    to_r, to_w = os.pipe2(os.O_CLOEXEC)
    from_r, from_w = os.pipe2(os.O_CLOEXEC)
    pidns = spec.namespace(sc.CLONE_NEWPID)
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if pidns is not None else -1
    try:
        # Only our next child enters it.
        if pidns:
            fd = os.open(pidns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.CLONE_NEWPID)
            finally:
                os.close(fd)
        elif pidns == "":
            sc.unshare(sc.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(to_w)
                os.close(from_r)
                _child(spec, to_r, from_w)
        finally:
            # Later children of ours (if any) belong in our own pid namespace again.
            if own_pidns >= 0:
                sc.setns(own_pidns, sc.CLONE_NEWPID)
    except BaseException:
        os.close(to_w)
        os.close(from_r)
        raise
    finally:
        if own_pidns >= 0:
            os.close(own_pidns)
        os.close(to_r)
        os.close(from_w)
    return Child(pid, to_w, from_r)


def _child(spec: LaunchSpec, from_parent: int, to_parent: int) -> None:
    """Never returns: ends in exec, or in _exit with the reason on to_parent."""
    code, message, created = 125, "container setup failed", False
    try:
        # A session of its own: no controlling terminal to push input into
        # (TIOCSTI), no process group shared with pyctr's caller (kill(0, ...)).
        os.setsid()
        # Nothing of pyctr's (its bus connection) or its caller's stays with the container.
        low, high = sorted((from_parent, to_parent))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 20)
        if spec.hook_state is not None:
            spec.hook_state["pid"] = int(os.readlink("/proc/self"))  # as the host sees us
        fifo = os.open(spec.exec_fifo, os.O_PATH | os.O_CLOEXEC) if spec.exec_fifo else -1
        console = _connect_console(spec.console_socket) if spec.terminal else None
        if spec.start_container_hooks:  # unreachable after pivot_root
            import subprocess  # noqa: F401

            import pyctr_systemd.hooks  # noqa: F401
        ns_fds = _open_namespaces(spec)
        prepare(spec, ns_fds)
        os.write(to_parent, b"p")
        if os.read(from_parent, 1) != b"g":
            os._exit(125)  # pyctr gave up; it knows why
        _enter_namespaces(spec, ns_fds, (sc.CLONE_NEWCGROUP,))  # rooted at the unit's cgroup
        new_root = spec.namespace(sc.CLONE_NEWNS) == ""
        if new_root:
            for op in late_plan(spec):
                op.execute()
        _run_hooks(spec, spec.create_container_hooks, "created")
        if new_root:
            _enter_root(spec)
        if new_root:
            os.makedirs(spec.cwd, exist_ok=True)  # as runc does for process.cwd
        os.chdir(spec.cwd)  # first: a relative command is found from here, as runc finds it
        code = 127
        path = find_executable(spec)
        code = 125
        if console is not None:
            _open_console(spec, console)
        os.write(to_parent, b"c")
        created = True
        _wait_for_start(spec, fifo, from_parent)
        _run_hooks(spec, spec.start_container_hooks, "running")
        _set_identity(spec)
        _reset_for_exec(to_parent)
        try:
            env = dict(e.split("=", 1) for e in spec.env if "=" in e)
            os.execve(path, list(spec.argv), env)
        except OSError as e:
            code = 127 if isinstance(e, FileNotFoundError) else 126
            message = f"cannot run {spec.argv[0]!r}: {e.strerror}"
    except OSError as e:
        what = f"cannot run {spec.argv[0]!r}" if code == 127 else "container setup failed"
        message = f"{what}: {e.strerror}"
        if e.filename and code != 127 and str(e.filename) not in message:
            message += f" ({e.filename})"
    except KeyboardInterrupt:
        message = "container setup interrupted"
    except BaseException as e:  # anything else must still end in _exit, never return
        message = f"container setup failed: {e}"
    finally:
        _report(to_parent, code, message, created)


def _report(to_parent: int, code: int, message: str, created: bool) -> None:
    try:
        try:
            os.write(to_parent, f"E{code}\0{message}".encode())
        except OSError:
            if created:  # `pyctr create` has returned: the container's stderr is all we have
                os.write(2, f"pyctr: {message}\n".encode())
    finally:
        os._exit(code)
