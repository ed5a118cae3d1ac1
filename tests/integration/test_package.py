"""The Debian package as a new user meets it: apt-get install, use, remove, purge.

The sandbox's root is a throwaway overlay, so installing here changes nothing
on the machine. (Not in the cgroup v2 lane: see tests/vm/lane.py.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import package
from tests.cli import CHECKOUT
from tests.integration.conftest import show, systemctl

APT_ENV = {**package.BUILD_ENV, "DEBIAN_FRONTEND": "noninteractive"}


def apt_get(*args: str) -> None:
    done = subprocess.run(
        ["apt-get", "-y", "-q", "--no-install-recommends", *args],
        env=APT_ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


@pytest.fixture
def throwaway_root() -> Iterator[None]:
    """A root to install into: the sandbox's overlay, never a real host
    (PYCTR_TEST_ON_HOST). Build machines' images often carry a policy-rc.d
    that forbids starting and stopping services from maintainer scripts; a
    Debian machine has none, so it goes, in the throwaway root only."""
    if b"container=pyctr-sandbox" not in Path("/proc/1/environ").read_bytes():
        pytest.skip("installs a package: runs only in the project's sandbox")
    policy = Path("/usr/sbin/policy-rc.d")
    saved = policy.read_bytes() if policy.exists() else None
    policy.unlink(missing_ok=True)
    yield
    if saved is not None:
        policy.write_bytes(saved)
        policy.chmod(0o755)


def autopkgtest(name: str) -> None:
    """One of debian/tests/ (the package's autopkgtests), run as autopkgtest would."""
    script = CHECKOUT / "debian" / "tests" / name
    done = subprocess.run([str(script)], cwd="/", env=APT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_install_use_remove_and_purge(throwaway_root: None) -> None:
    assert not Path("/usr/local/bin/pyctr").exists()  # only the package's pyctr is found
    apt_get("install", str(package.deb()))
    try:
        autopkgtest("use")
        upgrade_keeps_containers_running(package.deb())
        autopkgtest("remove-and-purge")
    finally:
        subprocess.run(["apt-get", "purge", "-y", "-q", "pyctr-systemd"], env=APT_ENV, capture_output=True)
    assert not Path("/usr/bin/pyctr").exists()


def upgrade_keeps_containers_running(deb: Path) -> None:
    """Installing the package again (as an upgrade does) leaves running containers alone."""
    define = ["pyctr", "define", "keep", "--", "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]
    subprocess.run(define, cwd="/", env=APT_ENV, check=True, capture_output=True)
    systemctl("start", "pyctr@keep")
    try:
        before = show("pyctr@keep", "MainPID")
        apt_get("install", "--reinstall", str(deb))
        assert show("pyctr@keep", "ActiveState", "MainPID") == {"ActiveState": "active", **before}
    finally:
        systemctl("stop", "pyctr@keep")
        subprocess.run(["pyctr", "undefine", "keep"], cwd="/", env=APT_ENV, check=True)
