"""pyctr_systemd.init.seal: the launcher's interpreter is a copy nothing can write, either way."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys

import pytest

from pyctr_systemd import syscalls
from pyctr_systemd.init import seal

PYTHON = os.path.realpath(sys.executable)
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a mount, even a detached one, needs root")


def runs(fd: int) -> str:
    """What the interpreter behind `fd` prints as /proc/self/exe, exec'd as the launcher is."""
    code = "import os; print(os.readlink('/proc/self/exe'))"
    argv = [PYTHON, "-I", "-S", "-c", code]
    child = subprocess.run(
        argv, executable=f"/proc/self/fd/{fd}", pass_fds=(fd,), capture_output=True, text=True, check=True
    )
    return child.stdout.strip()


def test_the_overlay_copy_cannot_be_written_through_its_exe_link() -> None:
    fd = seal.interpreter(PYTHON)
    try:
        exe = runs(fd)
        assert exe == f"/{os.path.basename(PYTHON)}"  # the overlay's, mounted nowhere: not a host path
        with pytest.raises(OSError) as e:
            os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
        assert e.value.errno == errno.EROFS
    finally:
        os.close(fd)


def test_without_the_new_mount_api_a_sealed_memfd(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fsopen(fstype: str) -> int:
        raise OSError(errno.ENOSYS, "fsopen")

    monkeypatch.setattr(syscalls, "fsopen", no_fsopen)
    fd = seal.interpreter(PYTHON)
    try:
        assert runs(fd).startswith("/memfd:pyctr-python")
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"x", 0)
        with open(PYTHON, "rb") as original:
            assert os.pread(fd, 4096, 0) == original.read(4096)
    finally:
        os.close(fd)
