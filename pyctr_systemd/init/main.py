"""The container's first process, from its sealed start to the payload's exec.

The order is the security boundary's:

  sealed      re-executed from a copy the container cannot write (init.seal),
              non-dumpable before it joins anything of the container's
  host facts  cap_last_cap and a verified /dev/null, read while the host's
              /proc and /dev are the ones in view
  prepare     namespaces (pid is the parent's doing, or joined last, below),
              the root's mounts through fds, hostname, sysctls -> PREPARED
              (meanwhile systemd creates the unit and moves us into it)
  go          cgroup namespace and cgroup mounts (both need the unit),
              createContainer hooks, pivot_root; only now, with the
              container's root as ours, a pid namespace to join is joined,
              by forking into it (FORKED), and its /proc mounted
  create      cwd, identity (init.identity), the payload found as the
              payload's user -> CREATED
  start       the exec fifo opened (`pyctr start`) or START read from the
              parent; a no_new_privs seccomp filter, startContainer hooks,
              exec of the payload

so no Python stays in the container, nothing of the payload runs outside its
limits, and a missing executable is reported by `create`, as runc does.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import errno
import os
import sys
from stat import S_ISDIR

from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import LaunchError
from pyctr_systemd.init import identity, launch, rootfs, sync
from pyctr_systemd.mounts import MS_SLAVE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.hooks import Hook
    from pyctr_systemd.init.launch import LaunchSpec

# Namespaces in the order they are made or joined before PREPARED: mount last, as
# joining it changes the root (and the host's /proc paths are gone after it).
NAMESPACE_ORDER = (sc.CLONE_NEWUTS, sc.CLONE_NEWIPC, sc.CLONE_NEWNET, sc.CLONE_NEWNS)


def main() -> None:
    """argv: -c pyctr-init SPEC_FD FROM_PARENT TO_PARENT. Never returns: ends in the payload's
    exec, or in _exit with the reason sent to the parent."""
    spec_fd, from_parent, to_parent = (int(a) for a in sys.argv[2:5])
    for fd in (from_parent, to_parent):
        os.set_inheritable(fd, False)  # the pipe to the parent closes at the payload's exec: that is the news
    channel = sync.Channel(from_parent, to_parent)
    outcome = _Outcome()
    try:
        identity.not_dumpable()
        spec = _read_spec(spec_fd)
        _run(spec, channel, outcome)
    except OSError as e:
        outcome.failed(e)
    except LaunchError as e:
        outcome.code, outcome.message = e.exit_code, str(e)
    except KeyboardInterrupt:
        outcome.message = "container setup interrupted"
    except BaseException as e:  # anything else must still end in _exit, never return
        outcome.message = f"container setup failed: {e}"
    finally:
        try:
            channel.fail(outcome.code, outcome.message, outcome.created)
        finally:
            os._exit(outcome.code)


class _Outcome:
    """How the launcher ends if it does not exec: its exit status and why."""

    def __init__(self) -> None:
        self.code, self.message, self.created = 125, "container setup failed", False
        self.argv0 = self.path = ""  # the payload as given, and as found

    def failed(self, e: OSError) -> None:
        payload = self.code in (126, 127)
        self.message = (
            f"{f'cannot run {self.argv0!r}' if payload else 'container setup failed'}: {e.strerror}"
        )
        if e.filename and not payload and str(e.filename) not in self.message:
            self.message += f" ({e.filename})"


def _read_spec(fd: int) -> LaunchSpec:
    import marshal

    with os.fdopen(fd, "rb") as f:
        return launch.from_wire(marshal.loads(f.read()))


def _run(spec: LaunchSpec, channel: sync.Channel, outcome: _Outcome) -> None:
    outcome.argv0 = spec.argv[0]
    last_cap = identity.last_capability()
    # A session of its own: no controlling terminal to push input into
    # (TIOCSTI), no process group shared with pyctr's caller (kill(0, ...)).
    os.setsid()
    if spec.keyring:
        identity.join_keyring(spec.keyring)
    if spec.hook_state is not None:
        spec.hook_state["pid"] = int(os.readlink("/proc/self"))  # as the host sees us
    fifo = os.open(spec.exec_fifo, os.O_PATH | os.O_CLOEXEC) if spec.exec_fifo else -1
    console = _connect_console(spec.console_socket) if spec.terminal else None
    if spec.start_container_hooks:  # unreachable after pivot_root
        import json  # noqa: F401
        import subprocess  # noqa: F401

        import pyctr_systemd.hooks  # noqa: F401
    ns_fds = _open_namespaces(spec)
    setup = rootfs.Setup()
    _prepare(spec, ns_fds, setup)
    channel.report(sync.PREPARED)
    seccomp = channel.wait_go()
    host_proc = _go(spec, ns_fds, setup, channel)
    _create(spec, last_cap, seccomp, console, outcome)
    channel.report(sync.CREATED)
    outcome.created = True
    _wait_for_start(fifo, channel, host_proc)
    identity.finish(spec, seccomp)
    _run_hooks(spec, spec.start_container_hooks, "running")
    _reset_for_exec(channel.to_parent)
    try:
        env = dict(e.split("=", 1) for e in spec.env if "=" in e)
        os.execve(outcome.path, list(spec.argv), env)
    except OSError as e:
        outcome.code = 127 if isinstance(e, FileNotFoundError) else 126
        raise


def _go(spec: LaunchSpec, ns_fds: dict[int, int], setup: rootfs.Setup, channel: sync.Channel) -> int:
    """In the unit: the cgroup namespace and mounts, createContainer hooks, the root entered,
    and only then a pid namespace to join. Returns the host's /proc where the root has none
    (a chroot), for the exec fifo, else -1."""
    host_proc = -1
    new_root = _builds_root(spec)
    _enter_namespaces(spec, ns_fds, (sc.CLONE_NEWCGROUP,))  # rooted at the unit's cgroup
    if new_root:
        rootfs.execute(rootfs.late_plan(spec), setup)
    _run_hooks(spec, spec.create_container_hooks, "created")
    if new_root:
        _enter_root(spec, setup.root.fd)
    elif spec.rootfs:
        # The runtime's mount namespace, shared: pivot_root or a move onto / would change
        # the host's root, so only this process's root changes (runc chroots here too).
        host_proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        os.chroot(spec.rootfs)
    if sc.CLONE_NEWPID in ns_fds:
        pid = _fork_into(ns_fds.pop(sc.CLONE_NEWPID), channel)
        if spec.hook_state is not None:
            spec.hook_state["pid"] = pid  # for startContainer hooks, as the host sees it
        if new_root:
            setup.close()  # the host's /dev/null went with the old root: use the container's
            rootfs.execute(rootfs.proc_plan(spec), setup)
    setup.close()
    if spec.rootfs:
        os.makedirs(spec.cwd, exist_ok=True)  # as runc does for process.cwd
    os.chdir(spec.cwd)  # first: a relative command is found from here, as runc finds it
    return host_proc


def _create(
    spec: LaunchSpec, last_cap: int, seccomp: identity.Program | None, console: object, outcome: _Outcome
) -> None:
    """The payload's identity, and its executable found as the payload's user would."""
    if not any(e.startswith("HOME=") for e in spec.env):
        spec.env += (f"HOME={identity.home(spec.uid)}",)
    identity.take(spec, last_cap, seccomp)
    identity.not_dumpable()  # a change of ids may have set it to fs.suid_dumpable
    outcome.path = find_executable(spec)
    if console is not None:
        _open_console(spec, console)


def _prepare(spec: LaunchSpec, ns_fds: dict[int, int], setup: rootfs.Setup) -> None:
    """Everything that needs no unit yet: namespaces, mounts, hostname, sysctls. /proc waits
    if a pid namespace is to be joined: only a member of it can mount its /proc."""
    # Through the host's /proc, before a joined mount namespace shows the container's, in
    # which this process, not yet in its pid namespace, has no /proc/self.
    for resource, soft, hard in spec.rlimits:
        sc.setrlimit(resource, soft, hard)
    if spec.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(spec.oom_score_adj))
        except OSError as e:  # lowering it takes CAP_SYS_RESOURCE, which not every caller has
            raise LaunchError(
                f"container setup failed: cannot set process.oomScoreAdj {spec.oom_score_adj}: {e.strerror}"
            ) from None
    _enter_namespaces(spec, ns_fds, NAMESPACE_ORDER)
    if _builds_root(spec):
        setup.use_host_null()
        rootfs.execute(rootfs.plan(spec, proc_later=sc.CLONE_NEWPID in ns_fds), setup)
    if spec.hostname:
        sc.sethostname(spec.hostname)
    for key, value in spec.sysctl:
        # /proc/sys shows the writer's own net, ipc and uts namespaces.
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)
    if spec.namespace(sc.CLONE_NEWNET) == "":
        sc.set_loopback_up()


def _builds_root(spec: LaunchSpec) -> bool:
    """A container's root is built, and pivoted into, in the mount namespace it makes or joins
    (as runc does in a joined one); `exec` joins a container's root already built (no rootfs)."""
    return bool(spec.rootfs) and spec.namespace(sc.CLONE_NEWNS) is not None


def _open_namespaces(spec: LaunchSpec) -> dict[int, int]:
    """Open every namespace to join first: once in the container's mount namespace, the
    host's /proc paths are gone."""
    fds = {flag: os.open(path, os.O_RDONLY | os.O_CLOEXEC) for flag, path in spec.namespaces if path}
    mnt = fds.get(sc.CLONE_NEWNS)
    if mnt is not None and _builds_root(spec) and _same_namespace(mnt, "/proc/self/ns/mnt"):
        # Checked on the fd that will be joined: the root is built and pivoted into in a
        # joined mount namespace, which in the host's would make the rootfs every process's /.
        raise LaunchError(
            f"container setup failed: {spec.namespace(sc.CLONE_NEWNS)} is the host's mount namespace "
            "(leave the mount entry out of linux.namespaces to share it)"
        )
    return fds


def _same_namespace(fd: int, path: str) -> bool:
    ours, theirs = os.fstat(fd), os.stat(path)
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _enter_namespaces(spec: LaunchSpec, fds: dict[int, int], stage: tuple[int, ...]) -> None:
    """Join the namespaces given by path, then make the new ones, in one unshare."""
    new = 0
    for flag in stage:
        if flag in fds:
            fd = fds.pop(flag)
            sc.setns(fd, flag)
            os.close(fd)
        elif spec.namespace(flag) == "":
            new |= flag
    if new:
        sc.unshare(new)


def _enter_root(spec: LaunchSpec, root: int) -> None:
    os.fchdir(root)  # the root made: not whatever its path names now
    if spec.pivot:
        # pivot_root(".", ".") stacks the old root on the new one; detach it, once it is a
        # slave: detaching a root still shared with the host would unmount the host's mounts.
        # Through a fd of its own: "." names the new root to mount(2), the stacked one to umount(2).
        old_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        os.close(old_root)
        sc.mount(None, ".", None, sc.MS_REC | MS_SLAVE)
        sc.umount(".", sc.MNT_DETACH)
    else:
        sc.mount(".", "/", None, sc.MS_MOVE)
        os.chroot(".")
    os.chdir("/")
    sc.mount(None, "/", None, spec.propagation)  # linux.rootfsPropagation, for the new root
    if spec.readonly_root:
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _fork_into(pidns: int, channel: sync.Channel) -> int:
    """Join a pid namespace, which only our children can: fork, and let the child go on.
    It is born with the container's root, so nothing in there ever sees a process of ours
    whose root is the host's; we tell the parent its pid and leave it to the parent.
    Returns, in the child, its pid as the host sees it (from in there, it cannot)."""
    sc.setns(pidns, sc.CLONE_NEWPID)
    os.close(pidns)
    read, write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid:
        channel.forked(pid)
        os.write(write, sync.number(pid))
        os._exit(0)
    os.close(write)
    host_pid = sync.read_number(read)
    os.close(read)
    os.setsid()  # a session of its own again: it leads it, and may take a terminal
    return host_pid


def find_executable(spec: LaunchSpec) -> str:
    """The payload's path, searched in the container's PATH inside its root, as runc does,
    and refused in runc's words (Go's exec.LookPath): docker and podman read 127 or 126
    from them.

    Not shutil.which or os.execvpe: they import modules on first use, and
    after pivot_root the host's Python library is out of reach.
    """
    name = spec.argv[0]
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            code = 127 if e.errno in (errno.ENOENT, errno.ENOTDIR) else 126
            raise LaunchError(f'exec: "{name}": stat {name}: {_go_words(e)}', code) from None
        if S_ISDIR(st.st_mode) or not os.access(name, os.X_OK):
            raise LaunchError(f'exec: "{name}": permission denied', 126)
        return name
    env = dict(e.split("=", 1) for e in spec.env if "=" in e)
    for directory in env.get("PATH", launch.DEFAULT_PATH).split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise LaunchError(f'exec: "{name}": executable file not found in $PATH', 127)


def _go_words(e: OSError) -> str:
    text = e.strerror or "error"
    return text[:1].lower() + text[1:]


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


def _wait_for_start(fifo: int, channel: sync.Channel, host_proc: int) -> None:
    if fifo >= 0:
        # Blocks until `pyctr start` opens the fifo for reading.
        if host_proc >= 0:
            fd = os.open(f"self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC, dir_fd=host_proc)
        else:
            fd = os.open(rootfs.fd_path(fifo), os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo)
    else:
        channel.wait(sync.START)
    if host_proc >= 0:
        os.close(host_proc)


def _reset_for_exec(keep_fd: int) -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec.
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 20)
