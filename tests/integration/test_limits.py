"""Limits are properties of the container's unit, and the kernel enforces them."""

from __future__ import annotations

import subprocess

from pyctr_systemd import cgroups
from tests.cli import start_pyctr
from tests.integration.conftest import cgroup_file, show, unit_pids, wait_for_line

WAIT = "echo ready; read line"


def finish(container: subprocess.Popen[str]) -> str:
    """Let the container end; its stderr."""
    if container.poll() is not None:
        return ""  # already ended: the test has failed, and says why
    out, err = container.communicate("\n", timeout=30)
    assert container.returncode == 0, err
    return err


def test_limits_in_unit_properties_and_cgroup_files() -> None:
    container = start_pyctr(
        "run",
        "--name",
        "limited",
        "--memory",
        "64M",
        "--memory-swap",
        "0",
        "--cpu-shares",
        "512",
        "--cpus",
        "0.5",
        "--pids-limit",
        "10",
        "--",
        "sh",
        "-c",
        WAIT,
    )
    try:
        wait_for_line(container, "ready")
        unit = "pyctr-limited.scope"
        props = show(
            unit,
            "Slice",
            "ActiveState",
            "MemoryMax",
            "MemorySwapMax",
            "CPUShares",
            "CPUWeight",
            "CPUQuotaPerSecUSec",
            "TasksMax",
            "DevicePolicy",
            "Description",
        )
        assert props["Slice"] == "pyctr.slice"
        assert props["ActiveState"] == "active"
        assert props["Description"] == "pyctr container limited"
        assert props["MemoryMax"] == str(64 << 20)
        # systemd limits swap only on v2; on v1 pyctr sets nothing and says so.
        assert props["MemorySwapMax"] == ("0" if cgroups.is_unified() else "infinity")
        assert props["CPUQuotaPerSecUSec"] == "500ms"
        assert props["TasksMax"] == "10"
        assert props["DevicePolicy"] == "closed"
        assert cgroup_file(unit, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20)
        assert cgroup_file(unit, "pids", "pids.max", "pids.max") == "10"
        if cgroups.is_unified():
            assert props["CPUWeight"] == "50"  # 512 shares, converted
            assert cgroup_file(unit, "cpu", "", "cpu.weight") == "50"
            assert cgroup_file(unit, "cpu", "", "cpu.max") == "50000 100000"
            assert cgroup_file(unit, "memory", "", "memory.swap.max") == "0"
        else:
            assert props["CPUShares"] == "512"
            assert cgroup_file(unit, "cpu", "cpu.shares", "") == "512"
            assert cgroup_file(unit, "cpu", "cpu.cfs_quota_us", "") == "50000"
            assert cgroup_file(unit, "cpu", "cpu.cfs_period_us", "") == "100000"
        (payload,) = unit_pids(unit)
        assert open(f"/proc/{payload}/cmdline").read().split("\0")[:2] == ["sh", "-c"]
        cgls = subprocess.run(
            ["systemd-cgls", "--no-pager", "-u", "pyctr.slice"], capture_output=True, text=True, check=True
        ).stdout
        assert f"{unit}" in cgls
        assert f"{payload} sh -c {WAIT}" in cgls
    finally:
        err = finish(container)
    warning = "pyctr: warning: --memory-swap is not enforced: systemd limits swap only on cgroup v2"
    assert err.startswith(warning) is (not cgroups.is_unified()), err


def test_cpu_weight_option() -> None:
    container = start_pyctr("run", "--name", "weighted", "--cpu-weight", "200", "--", "sh", "-c", WAIT)
    try:
        wait_for_line(container, "ready")
        if cgroups.is_unified():
            assert show("pyctr-weighted.scope", "CPUWeight")["CPUWeight"] == "200"
        else:
            assert show("pyctr-weighted.scope", "CPUShares")["CPUShares"] == "2048"
            assert cgroup_file("pyctr-weighted.scope", "cpu", "cpu.shares", "") == "2048"
    finally:
        finish(container)


def test_pyctr_itself_stays_outside_the_unit() -> None:
    container = start_pyctr("run", "--name", "outside", "--", "sh", "-c", WAIT)
    try:
        wait_for_line(container, "ready")
        assert container.pid not in unit_pids("pyctr-outside.scope")
        assert len(unit_pids("pyctr-outside.scope")) == 1
    finally:
        finish(container)


def test_a_cpu_quota_is_what_systemd_keeps_across_a_reload(units: None) -> None:
    """systemd keeps a quota in whole percent (CPUQuota=N% in the transient unit's file and
    in a drop-in): --cpus 0.12345 is 130 ms a second for a scope, after a daemon-reload
    too, and for a defined service, whose drop-in systemd must not ignore."""
    from tests.cli import pyctr
    from tests.integration.conftest import systemctl

    container = start_pyctr("run", "--name", "quota", "--cpus", "0.12345", "--", "sh", "-c", WAIT)
    try:
        wait_for_line(container, "ready")
        assert show("pyctr-quota.scope", "CPUQuotaPerSecUSec") == {"CPUQuotaPerSecUSec": "130ms"}
        systemctl("daemon-reload")
        assert show("pyctr-quota.scope", "CPUQuotaPerSecUSec") == {"CPUQuotaPerSecUSec": "130ms"}
    finally:
        finish(container)
    assert pyctr("define", "quota", "--cpus", "0.12345", "--", "true").returncode == 0
    try:
        assert show("pyctr@quota.service", "CPUQuotaPerSecUSec") == {"CPUQuotaPerSecUSec": "130ms"}
    finally:
        assert pyctr("undefine", "quota").returncode == 0
