"""The project's systemd sandbox: boots, enforces limits, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mounts import mountpoints
from tests.sandbox.boot import Sandbox

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.fail("the sandbox needs root", pytrace=False)
    with Sandbox() as booted:
        yield booted


def sh(sandbox: Sandbox, script: str) -> str:
    result = sandbox.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return str(result.stdout).strip()


def test_systemd_is_pid_1_and_running(sandbox: Sandbox) -> None:
    assert sh(sandbox, "cat /proc/1/comm") == "systemd"
    assert sh(sandbox, "systemctl is-system-running") == "running"
    assert (
        sh(
            sandbox,
            "busctl --system call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
            "org.freedesktop.DBus.Properties Get ss org.freedesktop.systemd1.Manager Virtualization",
        )
        == 'v s "container-other"'
    )


def test_commands_run_in_its_root_and_namespaces(sandbox: Sandbox) -> None:
    assert sh(sandbox, "pwd") == sandbox.checkout
    assert sh(sandbox, "readlink /proc/self/ns/pid") == os.readlink(f"/proc/{sandbox.pid}/ns/pid")
    assert sh(sandbox, "readlink /proc/self/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert sh(sandbox, "stat -f -c %T /") == "overlayfs"


LIMITS_SEEN = """
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    g=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); cat $g/memory.max $g/pids.max $g/cpu.weight
else
    for cf in memory/memory.limit_in_bytes pids/pids.max cpu/cpu.shares; do
        c=${cf%/*}; cat /sys/fs/cgroup/$c$(grep -E ":$c(,[a-z]+)?:" /proc/self/cgroup | cut -d: -f3)/${cf#*/}
    done
fi
"""


def test_limits_are_enforced(sandbox: Sandbox) -> None:
    props = ["-p", "MemoryMax=50M", "-p", "TasksMax=10", "-p", "CPUShares=128"]
    result = sandbox.run(
        ["systemd-run", "--quiet", "--scope", *props, "sh", "-c", LIMITS_SEEN], capture_output=True, text=True
    )
    unified = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    # On v2 systemd maps CPUShares=128 to cpu.weight 128 * 100 / 1024.
    assert result.stdout.split() == ["52428800", "10", "12" if unified else "128"], result.stderr


def test_writes_stay_inside(sandbox: Sandbox) -> None:
    probe = Path("/var/tmp", f"pyctr-sandbox-probe-{os.getpid()}")
    sh(sandbox, f"touch {probe}")
    assert not probe.exists()


def test_host_tmp_survives_and_nothing_is_left_behind() -> None:
    keep = tempfile.NamedTemporaryFile(prefix="pyctr-keep-", dir="/tmp")
    mounts = mountpoints()
    with Sandbox() as sandbox:
        assert sandbox.unshare is not None
        pid, unshare = sandbox.pid, sandbox.unshare
        cgroup_dirs, tmpdir = list(sandbox.cgroups.dirs), sandbox.tmpdir
        assert cgroup_dirs and all(Path(d).is_dir() for d in cgroup_dirs)
        sh(sandbox, "systemd-tmpfiles --clean; systemd-run --quiet --scope true")
    assert Path(keep.name).exists()  # systemd-tmpfiles cleaned the overlay's /tmp, not ours
    # It powered off, within the grace: reboot(2) in a pid namespace ends the
    # namespace's init with SIGINT (which unshare passes on); the fallback is SIGKILL.
    assert unshare.returncode == -signal.SIGINT
    for p in (pid, unshare.pid):
        assert not Path(f"/proc/{p}").exists(), f"process {p} survived"
    assert not any(Path(d).exists() for d in cgroup_dirs)
    assert not Path(tmpdir).exists()
    assert mountpoints() == mounts
    keep.close()


def test_command_line_exit_status() -> None:
    result = subprocess.run(
        ["/usr/bin/python3", "-m", "tests.sandbox.boot", "--", "sh", "-c", "exit 7"],
        cwd=Sandbox().checkout,
        timeout=120,
    )
    assert result.returncode == 7
