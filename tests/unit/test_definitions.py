"""Drop-ins of defined containers: D-Bus properties as unit-file settings."""

from __future__ import annotations

from typing import Any

import pytest

from pyctr_systemd import definitions, limits, run_config
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.limits import UINT64_MAX, unit_properties


def test_properties_become_the_settings_systemctl_edit_would_show() -> None:
    settings = definitions.unit_settings(
        [
            ("MemoryMax", "t", 64 << 20),
            ("MemorySwapMax", "t", UINT64_MAX),
            ("CPUQuotaPerSecUSec", "t", 250_000),
            ("CPUQuotaPeriodUSec", "t", 50_000),
            ("DevicePolicy", "s", "strict"),
            ("DeviceAllow", "a(ss)", [("/dev/null", "rwm"), ("char-pts", "rw")]),
            ("AllowedCPUs", "ay", limits.cpu_mask("0-2,5")),
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
        ("AllowedCPUs", "0-2,5"),
        ("CPUAccounting", "no"),
    ]


def test_no_cpu_quota_is_an_empty_setting() -> None:
    assert definitions.unit_settings([("CPUQuotaPerSecUSec", "t", UINT64_MAX)]) == [("CPUQuota", "")]
    # the drop-in takes whole percent: "12.345%" would be ignored ("Invalid CPU quota")
    assert definitions.unit_settings([("CPUQuotaPerSecUSec", "t", 123_450)]) == [("CPUQuota", "13%")]


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        (("IOReadBandwidthMax", "a(st)", [("/dev/sda", 1000)]), "only plain values"),
        (("Description", "s", "x\nExecStartPre=/bin/touch /pwned"), "cannot go into a drop-in"),
        (("Description", "s", "100%n"), "cannot go into a drop-in"),
        (("Exec=Start", "s", "x"), "not the name of a unit setting"),
        (("", "s", "x"), "not the name of a unit setting"),
    ],
)
def test_what_a_drop_in_cannot_hold_is_refused(prop: tuple[str, str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        definitions.unit_settings([prop])


def test_updates_replace_settings_by_name_and_add_new_ones() -> None:
    base = [("MemoryMax", "1"), ("DeviceAllow", "/dev/null rwm"), ("DeviceAllow", "/dev/zero rwm")]
    changes = [("DeviceAllow", "/dev/full rw"), ("CPUWeight", "50")]
    assert definitions.merged(base, changes) == [
        ("MemoryMax", "1"),
        ("DeviceAllow", "/dev/full rw"),
        ("CPUWeight", "50"),
    ]


def test_the_dropin_carries_restart_and_limits() -> None:
    values: dict[str, Any] = {o.dest: o.default for o in run_config.OPTIONS} | {
        "memory": "32M",
        "pids_limit": 10,
    }
    config = run_config.build(**values, command_only=False, args=())  # as `pyctr define` makes it
    props = unit_properties(config.limits, unified=True)
    text = definitions.render_dropin("web", "on-failure", definitions.unit_settings(props))
    lines = text.splitlines()
    assert "[Service]" in lines and "Restart=on-failure" in lines
    assert {"DevicePolicy=closed", f"MemoryMax={32 << 20}", "TasksMax=10"} <= set(lines)
    with pytest.raises(InvalidArgument, match="invalid --restart 'sometimes'"):
        definitions.render_dropin("web", "sometimes", [])


@pytest.mark.parametrize("cpus", ["0", "0-3", "1,3,5-7", "2-2,4"])
def test_cpu_list_reads_back_what_cpu_mask_made(cpus: str) -> None:
    assert limits.cpu_mask(limits.cpu_list(limits.cpu_mask(cpus))) == limits.cpu_mask(cpus)
    assert limits.cpu_list(limits.cpu_mask("1,3,5-7")) == "1,3,5-7"
