"""Drop-ins of defined containers: D-Bus properties as unit-file settings."""

from __future__ import annotations

import pytest

from pyctr_systemd import definitions
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.limits import UINT64_MAX, Limits


def test_properties_become_the_settings_systemctl_edit_would_show() -> None:
    settings = definitions.unit_settings(
        [
            ("MemoryMax", "t", 64 << 20),
            ("MemorySwapMax", "t", UINT64_MAX),
            ("CPUQuotaPerSecUSec", "t", 250_000),
            ("CPUQuotaPeriodUSec", "t", 50_000),
            ("DevicePolicy", "s", "strict"),
            ("DeviceAllow", "a(ss)", [("/dev/null", "rwm"), ("char-pts", "rw")]),
            ("CPUAccounting", "b", False),
        ]
    )
    assert settings == [
        ("MemoryMax", str(64 << 20)),
        ("MemorySwapMax", "infinity"),
        ("CPUQuota", "25%"),
        ("CPUQuotaPeriodSec", "50000us"),
        ("DevicePolicy", "strict"),
        ("DeviceAllow", "/dev/null rwm"),
        ("DeviceAllow", "char-pts rw"),
        ("CPUAccounting", "no"),
    ]


def test_a_value_with_no_unit_file_form_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="IOReadBandwidthMax: only plain values"):
        definitions.unit_settings([("IOReadBandwidthMax", "a(st)", [("/dev/sda", 1000)])])


def test_updates_replace_properties_by_name_and_add_new_ones() -> None:
    base = [("MemoryMax", "t", 1), ("TasksMax", "t", 2)]
    assert definitions.merged(base, [("TasksMax", "t", 9), ("CPUWeight", "t", 50)]) == [
        ("MemoryMax", "t", 1),
        ("TasksMax", "t", 9),
        ("CPUWeight", "t", 50),
    ]


def test_the_dropin_carries_restart_and_limits() -> None:
    props = definitions.run_properties(Limits(memory=32 << 20, pids=10), unified=True)
    text = definitions.render_dropin("web", "on-failure", props)
    lines = text.splitlines()
    assert "[Service]" in lines and "Restart=on-failure" in lines
    assert {"DevicePolicy=closed", f"MemoryMax={32 << 20}", "TasksMax=10"} <= set(lines)
    with pytest.raises(InvalidArgument, match="invalid --restart 'sometimes'"):
        definitions.render_dropin("web", "sometimes", props)
