"""Attack programs for tests/integration/test_escape.py, built from the C sources beside this file.

The programs that run inside a container are static (a busybox rootfs has no
libc); evil.so is the one shared library, loaded by the host's own dynamic
python3 when a hostile image gets it to run inside the container.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cli import CHECKOUT

SOURCES = Path(__file__).parent
STATIC = ("probe", "procspy", "flipper")


class Binaries:
    """Where the built attack programs are."""

    def __init__(self, directory: Path) -> None:
        self.probe = directory / "probe"
        self.procspy = directory / "procspy"
        self.flipper = directory / "flipper"
        self.evil_so = directory / "evil.so"


def build(directory: Path) -> Binaries:
    """Compile every attack program into `directory`."""
    assert shutil.which("gcc"), "the attack tests need gcc and a static libc (gcc, libc6-dev)"
    for name in STATIC:
        _gcc("-static", "-o", str(directory / name), str(SOURCES / f"{name}.c"))
    _gcc("-shared", "-fPIC", "-o", str(directory / "evil.so"), str(SOURCES / "evil.c"))
    return Binaries(directory)


def _gcc(*args: str) -> None:
    done = subprocess.run(["gcc", "-O2", "-Wall", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"gcc {' '.join(args)}:\n{done.stderr}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_interpreter(directory: Path) -> Path:
    """A copy of the interpreter the tests run on, for pyctr to run from: an attack that
    reaches pyctr's own binary marks this copy, never the host's /usr/bin/python3."""
    copy = directory / "python3"
    shutil.copy2(Path(sys.executable).resolve(), copy)
    return copy


def pyctr_with(python: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """pyctr run by `python`, as tests.cli.pyctr runs it by sys.executable (output to
    files: a container made by create or run -d keeps pyctr's stdout and stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [str(python), "-m", "pyctr_systemd", *args],
            cwd=CHECKOUT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(CHECKOUT)},
            stdout=out,
            stderr=err,
            timeout=timeout,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            done.args, done.returncode, out.read().decode(), err.read().decode()
        )


def wait_for_file(path: Path, timeout: float, what: str) -> str:
    """The content of `path` once it exists; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {what} ({path})"
        time.sleep(0.05)
    return path.read_text()
