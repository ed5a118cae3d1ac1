"""The lab's memory eater: an OOM kill is reported as one, and only then."""

from __future__ import annotations

import os
import signal

from pyctr_systemd import cgroups
from tests.cli import pyctr, start_pyctr
from tests.integration.conftest import unit_pids, wait_for_line

# Where swap can be limited (v2), none: with swap the eater would swap, not die.
NO_SWAP = ["--memory-swap", "0"] if cgroups.is_unified() else []


def test_memory_eater_is_oom_killed_and_reported() -> None:
    result = pyctr(
        "run", "--name", "eater", "--memory", "32M", "--", "sh", "-c", "head -c 100m /dev/zero | tail"
    )
    assert result.returncode == 137
    assert result.stderr.splitlines()[-1] == "pyctr: container eater killed: out of memory (MemoryMax=32M)"


def test_oom_kill_of_the_payload_itself() -> None:
    # tail buffers a line that never ends, so PID 1 of the container is the one killed.
    result = pyctr("run", "--name", "pid1eater", "--memory", "48m", *NO_SWAP, "--", "tail", "/dev/zero")
    assert result.returncode == 137
    assert result.stderr == "pyctr: container pid1eater killed: out of memory (MemoryMax=48M)\n"


def test_sigkill_is_not_mistaken_for_oom() -> None:
    container = start_pyctr(
        "run", "--name", "killed", "--memory", "32M", "--", "sh", "-c", "echo ready; read x"
    )
    wait_for_line(container, "ready")
    (payload,) = unit_pids("pyctr-killed.scope")
    os.kill(payload, signal.SIGKILL)
    _, err = container.communicate(timeout=30)
    assert container.returncode == 137
    assert err == ""


def test_memory_within_the_limit_is_fine() -> None:
    result = pyctr("run", "--memory", "64M", "--", "sh", "-c", "head -c 16m /dev/zero | wc -c")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(16 << 20)
