"""Opt-in registration with systemd-machined: machinectl sees, shows and stops containers."""

from __future__ import annotations

import subprocess

from tests.cli import pyctr, start_pyctr
from tests.integration.conftest import show, systemctl, wait_for_line
from tests.integration.test_services import SLEEP, ok, wait_for


def machinectl(*args: str) -> str:
    return subprocess.run(
        ["machinectl", "--no-pager", *args], capture_output=True, text=True, timeout=60
    ).stdout


def registered(name: str) -> bool:
    return any(line.split()[:1] == [name] for line in machinectl("list", "--no-legend").splitlines())


def test_a_detached_container_in_machinectl() -> None:
    ok("run", "-d", "--machine", "--name", "mach", "--", "sh", "-c", SLEEP)
    try:
        line = next(
            line.split()
            for line in machinectl("list", "--no-legend").splitlines()
            if line.startswith("mach ")
        )
        assert line[1:3] == ["container", "pyctr"]
        status = machinectl("status", "mach")
        assert "pyctr-mach.service" in status and "sleep 1000" in status, status
        machinectl("terminate", "mach")
        wait_for(
            "the service to stop",
            lambda: show("pyctr-mach.service", "ActiveState")["ActiveState"] != "active",
        )
        wait_for("the registration to go", lambda: not registered("mach"))
    finally:
        pyctr("rm", "--force", "mach")


def test_a_foreground_container_is_registered_while_it_runs() -> None:
    process = start_pyctr("run", "--machine", "--name", "fgm", "--", "sh", "-c", "echo ready; read x")
    wait_for_line(process, "ready")
    assert registered("fgm")
    assert "pyctr-fgm.scope" in machinectl("status", "fgm")
    process.communicate("go\n", timeout=30)
    assert process.returncode == 0
    wait_for("the registration to go", lambda: not registered("fgm"))


def test_not_registered_without_machine() -> None:
    process = start_pyctr("run", "--name", "plain", "--", "sh", "-c", "echo ready; read x")
    wait_for_line(process, "ready")
    try:
        assert not registered("plain")
    finally:
        process.communicate("go\n", timeout=30)


def test_a_defined_container_registers_when_started(units: None) -> None:
    ok("define", "dm", "--machine", "--", "sh", "-c", SLEEP)
    systemctl("start", "pyctr@dm.service")
    try:
        assert registered("dm") and "pyctr@dm.service" in machinectl("status", "dm")
    finally:
        systemctl("stop", "pyctr@dm.service")
    wait_for("the registration to go", lambda: not registered("dm"))
