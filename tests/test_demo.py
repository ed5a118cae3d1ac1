"""The README's first command, tools/demo, does what it says: installs what pyctr needs
and shows a container's hostname, PID 1 and namespaces, and limits enforced.

Where PID 1 is not systemd (our machines, CI) this runs tools/demo as it is, and it
boots the sandbox itself; where PID 1 is systemd, tools/demo runs inside a sandbox,
so a test run never touches the host's units.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli import CHECKOUT

pytestmark = pytest.mark.sandbox

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")


def run_demo() -> str:
    demo = [str(CHECKOUT / "tools/demo")]
    if os.path.isdir("/run/systemd/system"):
        demo = [sys.executable, "-m", "tests.sandbox.boot", "--", *demo]
    done = subprocess.run(
        demo,
        cwd=CHECKOUT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


def after(lines: list[str], heading: str, count: int) -> list[str]:
    start = lines.index(heading) + 1
    return [line.strip() for line in lines[start : start + count]]


def test_the_demo_shows_a_container_and_its_limits_enforced() -> None:
    out = run_demo()
    lines = out.splitlines()
    assert "hostname: demo-box" in lines
    assert "my PID:   1" in lines
    inside = after(lines, "namespaces:", len(NAMESPACES))
    host = after(lines, "the host's namespaces, for comparison:", len(NAMESPACES))
    for ns, mine, theirs in zip(NAMESPACES, inside, host, strict=True):
        assert mine.startswith(f"{ns}:[") and theirs.startswith(f"{ns}:[")
        assert mine != theirs, f"the container shares the {ns} namespace"
    for setting in ("Slice=pyctr.slice", "MemoryMax=67108864", "TasksMax=20", "CPUQuotaPerSecUSec=500ms"):
        assert setting in lines
    assert "pyctr: container eater killed: out of memory (MemoryMax=32M)" in lines
    assert "exit status: 137" in lines
    assert "can't fork" in out  # the sixth sleep, past --pids-limit 5
    assert "0 loaded units listed." in lines  # nothing left behind
