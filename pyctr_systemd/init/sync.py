"""The handshake between pyctr and the container's first process, written once.

Over two pipes, one byte a step:

  child  -> PREPARED   namespaces made or joined, the root's mounts done
  parent -> GO program the child is in its unit (systemd made the scope, or it
                       was attached to a running container's unit); with it, the
                       compiled seccomp filter (init.bpf), if the spec has one
  child  -> FORKED pid only where the child joins a pid namespace: the process
                       that goes on in there (the child's own can never enter it)
  child  -> CREATED    root entered, identity taken, payload found: `created`
  parent -> START      (or `pyctr start` opens the exec fifo instead)
  child  -> ERROR      code NUL message, at any point, instead of the step

after which the pipe to the parent closes at the payload's exec. Each side
gives up when the other's end closes, so neither ever waits for a dead peer.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os
import sys

from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import LaunchError
from pyctr_systemd.init import bpf, launch, seal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PREPARED, GO, FORKED, CREATED, START, ERROR = b"p", b"g", b"f", b"c", b"s", b"E"
_NUMBER = 4  # bytes of a pid, a length or flags on the pipes


class Unreported(LaunchError):
    """The child ended without saying why (killed, by the OOM killer as likely as not)."""


class Child:
    """pyctr's handle on the container's first process (the parent side)."""

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid, self._to, self._from = pid, to_child, from_child
        self._error: LaunchError | None = None

    def wait_for(self, step: bytes) -> None:
        """Wait for the child to report `step`; raise its error if it failed instead
        (it is not reaped: abort() does that)."""
        data = os.read(self._from, 1)
        if data == FORKED:
            self._take_over(read_number(self._from))
            data = os.read(self._from, 1)
        if data != step:
            raise self.error(data) or Unreported("container setup failed")

    def _take_over(self, pid: int) -> None:
        """The process in the container's pid namespace is ours from now on: its parent,
        the first child, has exited, and we are its subreaper."""
        os.waitpid(self.pid, 0)
        self.pid = pid

    def send(self, message: bytes) -> None:
        try:
            os.write(self._to, message)
        except BrokenPipeError:
            pass  # it failed; wait_for() or error() will say why

    def created(self, seccomp: tuple[bytes, int] | None = None) -> None:
        """GO with the seccomp program and its flags, then wait until the container is created."""
        program, flags = seccomp or (b"", 0)
        self.send(GO + number(flags) + number(len(program)) + program)
        self.wait_for(CREATED)

    def abort(self) -> LaunchError | None:
        """End the child (it has not exec'd the payload yet), reap it, say why it failed."""
        self.close()
        _end(self.pid)
        head = b""
        if self._from >= 0:  # a process it forked into a pid namespace may still hold the pipe
            os.set_blocking(self._from, False)
            try:
                head = os.read(self._from, 65536)
            except BlockingIOError:
                pass
            os.set_blocking(self._from, True)
            if head.startswith(FORKED):
                _end(int.from_bytes(head[1 : 1 + _NUMBER], "little"))  # ours: its parent is gone
                head = head[1 + _NUMBER :]
        return self.error(head)

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
            if data.startswith(ERROR):
                code, _, message = data[1:].decode(errors="replace").partition("\0")
                self._error = LaunchError(message, int(code))
        return self._error


def _end(pid: int) -> None:
    try:
        os.kill(pid, _signal.SIGKILL)  # it may be stuck in a hook or a console connect
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def number(n: int) -> bytes:
    return n.to_bytes(_NUMBER, "little")


def read_number(fd: int) -> int:
    return int.from_bytes(_read_exactly(fd, _NUMBER), "little")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise LaunchError("container setup failed: the launcher ended mid-message")
        data += chunk
    return data


def launch_created(
    spec: launch.LaunchSpec, place: Callable[[int], None], before_go: Callable[[int], None] | None = None
) -> Child:
    """Spawn the container's first process and take it up to `created`.

    `place` puts the new process where it belongs (systemd's new scope, or a running
    container's unit) while it prepares; `before_go` runs once both are done. On any
    failure the child is gone, and its own error, if it had one, is raised: a failed
    setup explains a failed start best.
    """
    child = spawn(spec)
    try:
        # Compiled while the child starts up, and before the unit exists: a filter
        # libseccomp refuses leaves nothing to clean up.
        seccomp = bpf.compile(spec.seccomp) if spec.seccomp is not None else None
        place(child.pid)
        child.wait_for(PREPARED)
        if before_go is not None:
            before_go(child.pid)
        child.created(seccomp)
    except BaseException:
        error = child.abort()
        if error is not None:
            raise error from None
        raise
    return child


def spawn(spec: launch.LaunchSpec) -> Child:
    """Fork the container's first process; it seals itself and starts preparing at once.

    A new pid namespace is made here, so the child is its PID 1 from birth. A pid
    namespace to join is joined by the child itself, only once it is inside the
    container's root: see FORKED.
    """
    to_r, to_w = os.pipe2(os.O_CLOEXEC)
    from_r, from_w = os.pipe2(os.O_CLOEXEC)
    pidns = spec.namespace(sc.CLONE_NEWPID)
    own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC) if pidns == "" else -1
    try:
        if pidns:
            sc.set_child_subreaper()  # the process forked in there becomes ours
        elif pidns == "":
            sc.unshare(sc.CLONE_NEWPID)  # only our next child enters it
        try:
            pid = os.fork()
            if pid == 0:
                os.close(to_w)
                os.close(from_r)
                _exec_sealed(spec, to_r, from_w)
        finally:
            if own_pidns >= 0:  # later children of ours belong in our own pid namespace
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


def _exec_sealed(spec: launch.LaunchSpec, from_parent: int, to_parent: int) -> None:
    """In the forked child: exec the sealed interpreter running pyctr_systemd.init.main.
    Never returns. The spec goes along in a memfd, so neither side waits on a pipe."""
    try:
        import marshal

        # Nothing of pyctr's (its bus connection) or its caller's stays with the container.
        low, high = sorted((from_parent, to_parent))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 20)
        data = os.memfd_create("pyctr-spec", 0)
        os.write(data, marshal.dumps(launch.to_wire(spec)))  # type: ignore[arg-type]
        os.lseek(data, 0, os.SEEK_SET)
        python = os.path.realpath(sys.executable)
        exe = seal.interpreter(python)
        for fd in (from_parent, to_parent):
            os.set_inheritable(fd, True)
        # Where this pyctr_systemd is, then whatever else the parent finds modules in
        # (libseccomp's binding among them).
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = [here, *(p for p in sys.path if p and p != here)]
        code = f"import sys;sys.path[:0]={path!r};from pyctr_systemd.init.main import main;main()"
        argv = [python, "-I", "-S", "-c", code, "pyctr-init", str(data), str(from_parent), str(to_parent)]
        os.execve(exe, argv, {"LC_ALL": "C.UTF-8"})  # nothing of the caller's environment
    except BaseException as e:
        message = f"container setup failed: cannot start the launcher: {e}"
        try:
            os.write(to_parent, ERROR + b"125\0" + message.encode())
        finally:
            os._exit(125)


class Channel:
    """The child's side of the handshake."""

    def __init__(self, from_parent: int, to_parent: int) -> None:
        self.from_parent, self.to_parent = from_parent, to_parent

    def report(self, step: bytes) -> None:
        os.write(self.to_parent, step)

    def forked(self, pid: int) -> None:
        os.write(self.to_parent, FORKED + number(pid))

    def wait(self, step: bytes) -> None:
        """Wait for the parent's `step`; if it gave up instead, so do we (it knows why)."""
        if os.read(self.from_parent, 1) != step:
            os._exit(125)

    def wait_go(self) -> tuple[bytes, int] | None:
        """Wait for GO; the seccomp program and flags that come with it, if any."""
        self.wait(GO)
        try:
            flags, size = read_number(self.from_parent), read_number(self.from_parent)
            return (_read_exactly(self.from_parent, size), flags) if size else None
        except LaunchError:
            os._exit(125)

    def fail(self, code: int, message: str, created: bool) -> None:
        try:
            os.write(self.to_parent, ERROR + f"{code}\0{message}".encode())
        except OSError:
            if created:  # `pyctr create` has returned: the container's stderr is all we have
                os.write(2, f"pyctr: {message}\n".encode())
