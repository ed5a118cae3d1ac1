"""A real systemd as PID 1 of fresh namespaces, for machines whose PID 1 is not systemd.

pyctr needs systemd on the system bus. Development and CI machines often run
something else as PID 1, so tests, CI and the demo boot a throwaway system:
unshare pid+mount+cgroup+uts+ipc+net, build a root from a tmpfs overlay of the
host's /, mount proc, sys, /dev and the cgroup hierarchies afresh, pivot into it
and exec /lib/systemd/systemd. Nothing it writes reaches the host.

Usage: python3 -m tests.sandbox.boot [--] CMD [ARG...]
boots, runs CMD inside (cwd and paths of this checkout are the same in there),
powers off and exits with CMD's status.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pyctr_systemd import cgroups, syscalls

SYSTEMD = "/lib/systemd/systemd"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOT_TIMEOUT = 30.0
POWEROFF_GRACE = 15.0  # a poweroff takes well under a second here, seconds under emulation
# Hierarchies whose new child groups need settings before a task may join (cpuset's
# cpus and mems); systemd does not use them on v1, so the sandbox stays in ours.
_SKIP_HIERARCHIES = frozenset({"cpuset"})
SUPERVISOR = "pyctr-sandbox-supervisor"  # v2: where our processes go (see _Cgroups)
COMMANDS = "commands"  # the cgroup leaf commands run in, inside the sandbox
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYCTR_SANDBOX": "1",
}


class SandboxError(Exception):
    pass


class Sandbox:
    """One booted sandbox; use as a context manager so it is always torn down."""

    def __init__(self, checkout: str = CHECKOUT) -> None:
        self.checkout = checkout
        self.name = f"pyctr-sandbox-{uuid.uuid4().hex[:8]}"
        self.tmpdir = ""
        self.cgroups = _Cgroups(self.name)
        self.unshare: subprocess.Popen[bytes] | None = None
        self.pid = 0  # host pid of the sandbox's systemd

    def __enter__(self) -> Sandbox:
        try:
            self.boot()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def boot(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix=f"{self.name}.")
        self.cgroups.create()
        # unshare(1) stays behind as the pid namespace's parent; it must not sit
        # in the sandbox's root cgroup (on v2 that would keep the sandbox's systemd
        # from enabling controllers), so PID 1 joins the cgroups itself and only
        # then takes the cgroup namespace: see _pid1.
        self.unshare = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount",
                "--uts",
                "--ipc",
                "--net",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-m",
                "tests.sandbox.boot",
                "--pid1",
                self.tmpdir,
                self.checkout,
                *self.cgroups.dirs,
            ],
            cwd=CHECKOUT,
            env=ENV,
        )
        self.pid = self._wait_for_systemd()
        self._wait_running()

    def _wait_for_systemd(self) -> int:
        assert self.unshare is not None
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.unshare.poll() is not None:
                raise SandboxError(f"sandbox exited during boot (status {self.unshare.returncode})")
            for child in _children(self.unshare.pid):
                if _comm(child) == "systemd":
                    return child
            time.sleep(0.005)
        raise SandboxError("systemd did not start in the sandbox")

    def _wait_running(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            # Until systemd opens its private socket, systemctl answers "offline".
            state = self._capture(["systemctl", "is-system-running", "--wait"], deadline)
            if state not in ("offline", ""):
                break
            time.sleep(0.01)
        if state != "running":
            failed = self._capture(["systemctl", "--failed", "--no-legend", "--plain"], deadline)
            raise SandboxError(f"sandbox system is {state!r}, not running; failed units:\n{failed}")
        # basic.target leaves the system bus to socket activation, and systemd
        # joins it only once dbus.service runs: start it and wait for systemd.
        self._capture(["systemctl", "start", "dbus.service"], deadline)
        has_owner = [
            "busctl",
            "--system",
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            "org.freedesktop.systemd1",
        ]
        while self._capture(has_owner, deadline) != "b true":
            if time.monotonic() > deadline:
                raise SandboxError("systemd did not join the system bus")
            time.sleep(0.005)

    def _capture(self, argv: list[str], deadline: float) -> str:
        """Output of a boot-time command; these stay in our cgroup, while systemd
        is still trimming empty cgroups."""
        timeout = max(deadline - time.monotonic(), 0.1)
        result = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout)
        return result.stdout.strip()

    def command(
        self, argv: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None
    ) -> list[str]:
        """argv wrapped to run inside: all namespaces, its root, a cwd and env in it.

        nsenter's --wd=DIR would resolve DIR on the host, so -w takes systemd's cwd
        (/) and env(1) changes into the directory from inside.
        """
        assigns = [f"{k}={v}" for k, v in {**ENV, **(env or {})}.items()]
        return [
            "nsenter",
            "-t",
            str(self.pid),
            "-a",
            "-r",
            "-w",
            "--",
            "env",
            "-i",
            "-C",
            cwd or self.checkout,
            *assigns,
            *argv,
        ]

    def run(
        self, argv: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run argv inside, in the sandbox's cgroup namespace and below its root cgroup."""
        return subprocess.run(self.command(argv, cwd, env), preexec_fn=self.cgroups.join_commands, **kwargs)

    def stop(self) -> None:
        """Power off; SIGKILL what is left; remove the cgroups and the mount point."""
        if self.unshare is not None:
            if self.pid and self.unshare.poll() is None:
                # SIGTERM would make systemd re-execute; SIGRTMIN+4 is poweroff.
                _kill(self.pid, signal.SIGRTMIN + 4)
                try:
                    self.unshare.wait(POWEROFF_GRACE)
                except subprocess.TimeoutExpired:
                    pass
            if self.unshare.poll() is None:
                # Killing PID 1 of the pid namespace kills every process in it.
                for pid in [self.pid, *_children(self.unshare.pid)]:
                    _kill(pid, signal.SIGKILL)
                self.unshare.wait()
        try:
            self.cgroups.remove()
        finally:
            if self.tmpdir:
                os.rmdir(self.tmpdir)
            self.unshare, self.pid, self.tmpdir = None, 0, ""


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


class _Cgroups:
    """A cgroup of the sandbox's own in each hierarchy, to become its namespace's root.

    On v1 (legacy or hybrid) that is a child of ours in every hierarchy. On v2 a
    child can use a controller only if our cgroup enables it for its children,
    and then our cgroup may hold no process: so everything in it moves into a
    leaf, as systemd's delegation rules have it (https://systemd.io/CGROUP_DELEGATION),
    and stays there: the cgroup was handed to us for this. Where systemd is
    PID 1 that takes `systemd-run --scope -p Delegate=yes ...` (tests/run does it).

    Commands run inside must be inside too: cgroup v2 lets the sandbox's systemd
    move only processes within its cgroup namespace. They start in COMMANDS, a
    leaf below the sandbox's root.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.dirs: list[str] = []

    def create(self) -> None:
        ours = cgroups.of_pid("self")
        for mount in cgroups.mounts():
            if mount.key not in ours or mount.key in _SKIP_HIERARCHIES:
                continue
            base = mount.path_of(ours[mount.key])
            if mount.mountpoint == cgroups.CGROUP_ROOT and mount.fstype == "cgroup2":  # unified
                if os.path.basename(base) == SUPERVISOR:  # an earlier sandbox moved us there
                    base = os.path.dirname(base)
                _delegate(base)
            path = os.path.join(base, self.name)
            os.mkdir(path)
            self.dirs.append(path)

    def join_commands(self) -> None:
        """Move the calling process into the COMMANDS leaf of the sandbox's cgroups.

        The sandbox's systemd removes empty cgroups it finds at its root (as it
        boots, and at times after), so the leaf is made on demand, and made
        again if it vanishes between mkdir and joining.
        """
        for d in self.dirs:
            leaf = os.path.join(d, COMMANDS)
            for attempt in range(5):
                try:
                    if not os.path.isdir(leaf):
                        os.mkdir(leaf)
                    _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
                    break
                except OSError as e:  # ENOENT, EEXIST, ENODEV: it was being removed
                    if attempt == 4 or e.errno not in (errno.ENOENT, errno.EEXIST, errno.ENODEV):
                        raise
                    time.sleep(0.002)

    def remove(self) -> None:
        for d in self.dirs:
            _remove_cgroup_tree(d)
        self.dirs = []


def _delegate(base: str) -> None:
    """Enable for children the controllers `base` offers, moving its processes to a leaf."""
    missing = [
        c
        for c in cgroups.read(f"{base}/cgroup.controllers").split()
        if c not in cgroups.read(f"{base}/cgroup.subtree_control").split()
    ]
    if not missing:
        return
    try:
        if os.path.isdir("/run/systemd/system") and os.getxattr(base, "trusted.delegate") != b"1":
            raise OSError("not delegated")
        os.makedirs(f"{base}/{SUPERVISOR}", exist_ok=True)
        for pid in cgroups.read(f"{base}/cgroup.procs").split():
            _write(f"{base}/{SUPERVISOR}/cgroup.procs", pid)
        _write(f"{base}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    except OSError as e:
        raise SandboxError(
            f"cannot hand cgroup controllers to the sandbox from {base} ({e}); where systemd is "
            "PID 1, run this under systemd-run --scope -p Delegate=yes"
        ) from None


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _remove_cgroup_tree(top: str) -> None:
    """rmdir depth-first; a cgroup may stay busy for a moment after its last task."""
    deadline = time.monotonic() + POWEROFF_GRACE
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        while True:
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


# --- inside the new namespaces (PID 1 until systemd replaces it) -----------------


def _pid1(tmpdir: str, checkout: str, cgroup_dirs: list[str]) -> None:
    """Enter the sandbox's cgroups, build its root under tmpdir and exec systemd in it."""
    for d in cgroup_dirs:
        _write(f"{d}/cgroup.procs", "0")  # "0": the writer itself
    # Now the sandbox's cgroups are the namespace's root, and systemd's tree
    # never lands in the host's.
    syscalls.unshare(syscalls.CLONE_NEWCGROUP)
    syscalls.mount("tmpfs", tmpdir, "tmpfs", 0, "mode=0755")
    root = os.path.join(tmpdir, "root")
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(tmpdir, d))
    # The host's / as the lower layer: systemd-tmpfiles and the tests may write
    # anywhere, and all of it lands in this tmpfs.
    syscalls.mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={tmpdir}/upper,workdir={tmpdir}/work")
    syscalls.mount(
        "proc", f"{root}/proc", "proc", syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    )
    syscalls.mount("/dev", f"{root}/dev", None, syscalls.MS_BIND | syscalls.MS_REC)
    syscalls.mount(
        "sysfs",
        f"{root}/sys",
        "sysfs",
        # Read-only, as in any container: the sandbox's systemd then starts no
        # udev to act on the host's devices. (The cgroup mounts on it stay writable.)
        syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC | syscalls.MS_RDONLY,
    )
    _mount_cgroups(f"{root}{cgroups.CGROUP_ROOT}")
    for d in ("run", "tmp"):
        syscalls.mount(
            "tmpfs",
            f"{root}/{d}",
            "tmpfs",
            syscalls.MS_NOSUID | syscalls.MS_NODEV,
            "mode=1777" if d == "tmp" else "mode=0755",
        )
    os.makedirs(f"{root}{checkout}", exist_ok=True)
    syscalls.mount(checkout, f"{root}{checkout}", None, syscalls.MS_BIND | syscalls.MS_REC)
    os.chdir(root)
    syscalls.pivot_root(".", ".")
    syscalls.umount(".", syscalls.MNT_DETACH)
    os.chdir("/")
    env = {"container": "pyctr-sandbox", "PATH": ENV["PATH"], "LANG": ENV["LANG"]}
    os.execve(SYSTEMD, [SYSTEMD, "systemd.unit=basic.target", "systemd.firstboot=off"], env)


def _mount_cgroups(target: str) -> None:
    """The host's cgroup layout, mounted afresh so each root is our namespace's."""
    host = cgroups.mounts()
    unified = any(m.mountpoint == cgroups.CGROUP_ROOT for m in host)
    if not unified:
        syscalls.mount(
            "tmpfs", target, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC, "mode=0755"
        )
    for m in host:
        if not m.mountpoint.startswith(cgroups.CGROUP_ROOT):
            continue
        where = target + m.mountpoint[len(cgroups.CGROUP_ROOT) :]
        os.makedirs(where, exist_ok=True)
        opts = ",".join(o for o in m.options if o not in ("rw", "ro"))
        syscalls.mount(
            "cgroup",
            where,
            m.fstype,
            syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC,
            opts or None,
        )


def main(argv: list[str]) -> int:
    if argv[:1] == ["--pid1"]:
        _pid1(argv[1], argv[2], argv[3:])
        return 1
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        with Sandbox() as sandbox:
            return sandbox.run(argv, cwd=os.getcwd()).returncode
    except SandboxError as e:
        print(f"pyctr-sandbox: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
