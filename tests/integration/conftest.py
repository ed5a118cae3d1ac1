"""Integration tests: real systemd on the system bus, real kernel, run as root.

tests/run starts them inside the project's sandbox. Every test is checked for
leftovers afterwards: a pyctr unit, a cgroup under pyctr.slice or a new mount
left behind fails the test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctr_systemd import cgroups, rootfs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def systemd_is_running() -> None:
    if not os.path.isdir("/run/systemd/system") or os.geteuid() != 0:
        pytest.fail(
            "integration tests need root and systemd as PID 1: run them with tests/run", pytrace=False
        )
    state = systemctl("is-system-running", check=False).stdout.strip()
    assert state == "running", f"systemd is {state!r}"


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60, check=check)


def show(unit: str, *properties: str) -> dict[str, str]:
    out = systemctl("show", unit, *[f"--property={p}" for p in properties]).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def unit_pids(unit: str) -> list[int]:
    """Host PIDs in the unit's cgroup, read from the layout this machine mounted."""
    group = show(unit, "ControlGroup")["ControlGroup"]
    for mount in cgroups.mounts():
        if mount.key in ("", "name=systemd"):
            procs = Path(mount.path_of(group), "cgroup.procs")
            if procs.exists():
                return [int(p) for p in procs.read_text().split()]
    raise AssertionError(f"no cgroup.procs for {unit}")


def cgroup_file(unit: str, controller: str, v1: str, v2: str) -> str:
    """The content of a controller's file in the unit's cgroup (v1 or v2 name)."""
    group = show(unit, "ControlGroup")["ControlGroup"]
    for mount in cgroups.mounts():
        if controller in mount.controllers():
            name = v2 if mount.fstype == "cgroup2" else v1
            return Path(mount.path_of(group), name).read_text().strip()
    raise AssertionError(f"controller {controller} is not mounted")


def wait_for_line(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != expected:
        process.kill()
        process.wait(timeout=30)
        err = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"expected {expected!r} from the container, got {line!r}; stderr: {err}")


def _our_units() -> list[str]:
    out = systemctl("list-units", "--all", "--plain", "--no-legend", "pyctr-*").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _slice_children() -> list[str]:
    found = []
    for mount in cgroups.mounts():
        top = Path(mount.mountpoint, "pyctr.slice")
        if top.is_dir():
            found += [str(p) for p in top.iterdir() if p.is_dir()]
    return found


def _mountpoints() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    mounts = _mountpoints()
    yield
    units, groups, new_mounts = _our_units(), _slice_children(), _mountpoints() - mounts
    for unit in units:  # clean up so one leak does not fail every later test
        systemctl("kill", "--signal=KILL", unit, check=False)
        systemctl("stop", unit, check=False)
        systemctl("reset-failed", unit, check=False)
    assert units == [], f"units left behind: {units}"
    assert groups == [], f"cgroups left behind: {groups}"
    assert new_mounts == set(), f"mounts left behind: {new_mounts}"


@pytest.fixture(scope="session")
def default_rootfs() -> str:
    return rootfs.default()


@pytest.fixture
def marked_rootfs(tmp_path: Path) -> tuple[str, str]:
    """A fresh busybox rootfs with a marker file at its top: (path, marker text)."""
    root = tmp_path / "rootfs"
    root.mkdir()
    listing = subprocess.run([rootfs.BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    rootfs.apply(rootfs.busybox_plan(listing.stdout.splitlines()), str(root), rootfs.BUSYBOX)
    marker = f"you are here {os.urandom(4).hex()}"
    (root / "YOU-ARE-HERE").write_text(marker + "\n")
    return str(root), marker
