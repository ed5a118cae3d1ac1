"""Limits are properties of the container's unit, and the kernel enforces them."""

from __future__ import annotations

import subprocess

from pyctr_systemd import cgroups
from tests.cli import start_pyctr
from tests.integration.conftest import Bundle, cgroup_file, show, systemctl, unit_pids, wait_for_line

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


LIMITS = [
    "MemoryMax", "MemoryLow", "MemorySwapMax", "CPUWeight", "CPUShares", "CPUQuotaPerSecUSec",
    "CPUQuotaPeriodUSec", "AllowedCPUs", "AllowedMemoryNodes", "TasksMax", "DevicePolicy", "DeviceAllow",
]  # fmt: skip


def settings(unit: str) -> dict[str, list[str]]:
    """The unit's LIMITS as systemd shows them; a list setting (DeviceAllow) as a set: over
    D-Bus systemd keeps its entries in the reverse order of a file's, which means the same."""
    out = systemctl("show", unit, *[f"--property={p}" for p in LIMITS]).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return {key: sorted(values) for key, values in found.items()}


def test_one_bundles_limits_are_the_same_settings_on_a_scope_and_in_a_drop_in(
    units: None, oci_bundle: Bundle
) -> None:
    """One mapping: what pyctr create sets on the scope over D-Bus and what systemd parses from
    the drop-in of `pyctr define NAME BUNDLE` are the same settings, and stay so across a
    daemon-reload (systemd rewrites the scope's from its transient file)."""
    from tests.cli import pyctr
    from tests.integration.test_oci_lifecycle import new_id, ok

    oci_bundle.linux["resources"] = {
        "memory": {"limit": 48 << 20, "reservation": 16 << 20, "swap": 64 << 20},
        "cpu": {"shares": 512, "quota": 12345, "period": 50000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"},
        ],
    }
    oci_bundle.write("sleep", "100")
    cid = new_id()
    ok("create", "--bundle", str(oci_bundle.path), cid)
    try:
        scope = settings(f"pyctr-{cid}.scope")
        systemctl("daemon-reload")
        assert settings(f"pyctr-{cid}.scope") == scope
    finally:
        ok("delete", "--force", cid)
    assert pyctr("define", "lim", str(oci_bundle.path)).returncode == 0
    try:
        assert settings("pyctr@lim.service") == scope
    finally:
        ok("undefine", "lim")
    assert (scope["TasksMax"], scope["DevicePolicy"]) == (["20"], ["strict"])  # the settings were made
    assert "/dev/char/10:200 rw" in scope["DeviceAllow"]


def test_run_options_are_the_same_settings_for_a_scope_a_service_and_a_drop_in(units: None) -> None:
    """`pyctr run`, `pyctr run -d` and `pyctr define` of the same options: one set of settings,
    as systemd keeps them."""
    from tests.cli import pyctr
    from tests.integration.test_oci_lifecycle import ok

    options = [
        "--memory",
        "32M",
        "--memory-swap",
        "16M",
        "--cpu-weight",
        "300",
        "--cpus",
        "0.25",
        "--pids-limit",
        "9",
    ]
    container = start_pyctr("run", "--name", "optscope", *options, "--", "sh", "-c", WAIT)
    try:
        wait_for_line(container, "ready")
        scope = settings("pyctr-optscope.scope")
    finally:
        finish(container)
    ok("run", "-d", "--name", "optsvc", *options, "--", "sleep", "100")
    try:
        assert settings("pyctr-optsvc.service") == scope
    finally:
        ok("rm", "-f", "optsvc")
    assert pyctr("define", "optdef", *options, "--", "true").returncode == 0
    try:
        assert settings("pyctr@optdef.service") == scope
    finally:
        ok("undefine", "optdef")
    assert (scope["TasksMax"], scope["CPUQuotaPerSecUSec"], scope["DevicePolicy"]) == (
        ["9"],
        ["250ms"],
        ["closed"],
    )
