"""Running the pyctr CLI from this checkout, as a user would: python3 -m pyctr_systemd."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def pyctr(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run pyctr to its end."""
    return run_to_end([sys.executable, "-m", "pyctr_systemd", *args], input, env, timeout)


def run_to_end(
    argv: list[str], input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a runtime's command to its end. Its output goes to files, not pipes: a container
    made by `create` or `run -d` keeps the runtime's stdout and stderr, as runc's does, and a
    pipe would not end before the container does."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(
            argv,
            cwd=CHECKOUT,
            stdout=out,
            stderr=err,
            timeout=timeout,
            input=input.encode() if input is not None else None,
            env=env,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            done.args, done.returncode, out.read().decode(), err.read().decode()
        )


def start_pyctr(*args: str) -> subprocess.Popen[str]:
    """A container in the background, with pipes to its stdin and stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "pyctr_systemd", *args],
        cwd=CHECKOUT,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
