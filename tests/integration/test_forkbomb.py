"""The lab's fork bomb under --pids-limit 10."""

from __future__ import annotations

import subprocess
import time

from tests.cli import start_pyctr
from tests.integration.conftest import cgroup_file, show, systemctl, wait_for_line

# PID 1 forks twice, while task slots are free (sleep and the subshell that
# sets off the bomb), then only waits: busybox sh exits when a fork fails, and
# PID 1's end would end the container.
BOMB = 'trap "exit 0" TERM; sleep 1000 & bomb() { bomb | bomb & }; echo ready; (bomb) & wait'


def test_fork_bomb_is_contained_and_can_be_stopped() -> None:
    container = start_pyctr("run", "--name", "bomb", "--pids-limit", "10", "--", "sh", "-c", BOMB)
    unit = "pyctr-bomb.scope"
    try:
        wait_for_line(container, "ready")
        peak, deadline = 0, time.monotonic() + 2
        while time.monotonic() < deadline:
            peak = max(peak, int(cgroup_file(unit, "pids", "pids.current", "pids.current")))
            time.sleep(0.01)
        assert peak <= 10
        # The kernel refused forks: the bomb did go off, and hit the limit.
        refused = dict(
            line.split() for line in cgroup_file(unit, "pids", "pids.events", "pids.events").splitlines()
        )
        assert int(refused["max"]) > 0
        assert int(show(unit, "TasksCurrent")["TasksCurrent"]) <= 10
        # The host stays responsive.
        started = time.monotonic()
        assert systemctl("is-system-running").stdout.strip() == "running"
        assert subprocess.run(["true"], timeout=5).returncode == 0
        assert time.monotonic() - started < 5
        # And the container can be stopped as a unit.
        systemctl("stop", unit)
        container.wait(timeout=30)
    finally:
        if container.poll() is None:
            container.kill()
            container.wait()
    assert container.returncode == 0  # PID 1 took its TERM trap
