"""A terminal for a container run in the foreground (config.json "terminal": true).

The launcher makes a pty inside the container and sends its master over a unix
socket, the --console-socket protocol conmon also speaks (one SCM_RIGHTS fd).
Without --console-socket, `pyctr run` listens itself and copies between its own
terminal and the pty until the payload ends, as `runc run` does. The copying
loop is ours: the standard library's pty.spawn forks its own child.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import shutil
import socket
import struct
import tempfile
import termios
import tty
from types import TracebackType

from pyctr_systemd.errors import PyctrError


class Server:
    """A console socket of our own, if the container wants a terminal and none was given."""

    def __init__(self, wanted: bool) -> None:
        self.path = ""
        self._dir = ""
        self._sock: socket.socket | None = None
        if wanted:
            self._dir = tempfile.mkdtemp(prefix="pyctr-console-")
            self.path = os.path.join(self._dir, "console.sock")
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self._sock.bind(self.path)
            self._sock.listen(1)

    def __enter__(self) -> Server:
        return self

    def receive(self) -> int:
        """The pty master the container sent."""
        assert self._sock is not None
        self._sock.settimeout(30)
        conn, _ = self._sock.accept()
        with conn:
            fds: list[int] = []
            _, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("i")))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", data[: len(data) - len(data) % 4]))
        if len(fds) != 1:
            raise PyctrError("the container sent no terminal")
        return fds[0]

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._sock is not None:
            self._sock.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def proxy(master: int, pidfd: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the payload ends."""
    interactive = os.isatty(0)
    saved = termios.tcgetattr(0) if interactive else None
    if interactive:
        size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        tty.setraw(0)
    try:
        _copy(master, pidfd)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSAFLUSH, saved)
        os.close(master)


def _copy(master: int, pidfd: int) -> None:
    inputs = [master, pidfd, 0]
    while True:
        ready = select.select(inputs, [], [])[0]
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the pty's other end is gone
                data = b""
            if not data:
                return
            os.write(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                os.write(master, data)
            else:
                inputs.remove(0)
        if pidfd in ready:
            _drain(master)
            return


def _drain(master: int) -> None:
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(1, data)
