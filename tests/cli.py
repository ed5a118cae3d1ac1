"""Running the pyctr CLI from this checkout, as a user would: python3 -m pyctr_systemd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def pyctr(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyctr_systemd", *args],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=env,
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
