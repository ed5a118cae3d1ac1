"""pyctr_systemd.resources: linux.resources as systemd unit properties, on cgroup v1 and v2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyctr_systemd import resources, spec
from pyctr_systemd.limits import UINT64_MAX, cpu_mask
from pyctr_systemd.resources import DEFAULT_DEVICE_ALLOW, DeviceRule, Resources, device_properties

DATA = Path(__file__).resolve().parent / "data"
V1, V2 = False, True
GIB = 1 << 30
DEFAULTS = list(DEFAULT_DEVICE_ALLOW)
STRICT_DEFAULTS = [("DevicePolicy", "s", "strict"), ("DeviceAllow", "a(ss)", DEFAULTS)]


def props(unified: bool, **values: object) -> tuple[list[tuple[str, str, object]], list[str]]:
    return resources.properties(Resources(**values), unified, devices=False)


# --- memory ---------------------------------------------------------------------------


@pytest.mark.parametrize("unified", [V1, V2])
def test_memory_limit_is_memory_max(unified: bool) -> None:
    assert props(unified, memory_limit=GIB) == ([("MemoryMax", "t", GIB)], [])


@pytest.mark.parametrize("unified", [V1, V2])
def test_unlimited_memory_is_infinity(unified: bool) -> None:
    assert props(unified, memory_limit=-1) == ([("MemoryMax", "t", 2**64 - 1)], [])


def test_swap_on_v2_is_swap_minus_the_memory_limit() -> None:
    assert props(V2, memory_limit=GIB, memory_swap=3 * GIB // 2) == (
        [("MemoryMax", "t", GIB), ("MemorySwapMax", "t", GIB // 2)],
        [],
    )


def test_swap_equal_to_the_limit_means_no_swap() -> None:
    assert props(V2, memory_limit=GIB, memory_swap=GIB) == (
        [("MemoryMax", "t", GIB), ("MemorySwapMax", "t", 0)],
        [],
    )


def test_unlimited_swap_on_v2() -> None:
    assert props(V2, memory_limit=GIB, memory_swap=-1) == (
        [("MemoryMax", "t", GIB), ("MemorySwapMax", "t", UINT64_MAX)],
        [],
    )


def test_swap_with_unlimited_memory_on_v2_is_unlimited() -> None:
    assert props(V2, memory_limit=-1, memory_swap=GIB) == (
        [("MemoryMax", "t", UINT64_MAX), ("MemorySwapMax", "t", UINT64_MAX)],
        [],
    )


def test_swap_on_v1_is_a_warning_and_no_property() -> None:
    assert props(V1, memory_limit=GIB, memory_swap=2 * GIB) == (
        [("MemoryMax", "t", GIB)],
        ["memory.swap is not enforced: systemd limits swap only on cgroup v2"],
    )


def test_reservation_is_memory_low_on_v2() -> None:
    assert props(V2, memory_reservation=GIB // 2) == ([("MemoryLow", "t", GIB // 2)], [])
    assert props(V2, memory_reservation=-1) == ([("MemoryLow", "t", UINT64_MAX)], [])


def test_reservation_on_v1_is_a_warning() -> None:
    assert props(V1, memory_reservation=GIB // 2) == (
        [],
        ["memory.reservation is not enforced: systemd sets MemoryLow only on cgroup v2"],
    )


# --- cpu ------------------------------------------------------------------------------


@pytest.mark.parametrize("shares", [2, 512, 1024, 262144])
def test_shares_are_cpu_shares_on_v1(shares: int) -> None:
    assert props(V1, cpu_shares=shares) == ([("CPUShares", "t", shares)], [])


@pytest.mark.parametrize(
    ("shares", "weight"),
    [
        (2, 1),
        (10, 1),
        (11, 1),
        (20, 1),
        (512, 50),
        (1024, 100),
        (2048, 200),
        (102400, 10000),
        (262144, 10000),
    ],
)
def test_shares_are_cpu_weight_on_v2_by_systemds_mapping(shares: int, weight: int) -> None:
    assert props(V2, cpu_shares=shares) == ([("CPUWeight", "t", weight)], [])


@pytest.mark.parametrize("unified", [V1, V2])
def test_quota_and_period(unified: bool) -> None:
    assert props(unified, cpu_quota=50000, cpu_period=100000) == (
        [("CPUQuotaPeriodUSec", "t", 100000), ("CPUQuotaPerSecUSec", "t", 500000)],
        [],
    )


@pytest.mark.parametrize(
    ("quota", "period", "per_sec"),
    [
        (150000, 50000, 3_000_000),
        (33333, 100000, 340000),  # whole percent, rounded up, as runc rounds it
        (1000, 1000, 1_000_000),
        (1, 1_000_000, 10000),
        (250000, 1_000_000, 250000),
        (12345, 100000, 130000),
    ],
)
def test_quota_per_second(quota: int, period: int, per_sec: int) -> None:
    assert props(V2, cpu_quota=quota, cpu_period=period) == (
        [("CPUQuotaPeriodUSec", "t", period), ("CPUQuotaPerSecUSec", "t", per_sec)],
        [],
    )


def test_quota_without_period_uses_the_default_period_and_sets_none() -> None:
    assert props(V2, cpu_quota=50000) == ([("CPUQuotaPerSecUSec", "t", 500000)], [])


def test_period_without_quota_sets_only_the_period() -> None:
    assert props(V2, cpu_period=50000) == ([("CPUQuotaPeriodUSec", "t", 50000)], [])


def test_unlimited_quota_is_infinity() -> None:
    assert props(V2, cpu_quota=-1, cpu_period=100000) == (
        [("CPUQuotaPeriodUSec", "t", 100000), ("CPUQuotaPerSecUSec", "t", UINT64_MAX)],
        [],
    )


def test_zero_quota_is_no_quota() -> None:
    # runc reads quota 0 as "not set"; systemd refuses CPUQuotaPerSecUSec=0 ("value out of range").
    assert props(V2, cpu_quota=0) == ([], [])
    assert ("CPUQuotaPerSecUSec", "t", 0) not in props(V2, cpu_quota=0, cpu_period=100000)[0]


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("0", b"\x01"),
        ("0-2,4", b"\x17"),
        ("1,3", b"\x0a"),
        ("7", b"\x80"),
        ("8", b"\x00\x01"),
        ("0-9", b"\xff\x03"),
        ("0-3,8-11", b"\x0f\x0f"),
        ("2-2", b"\x04"),
        ("0, 2", b"\x05"),
        ("1,,2", b"\x06"),
        ("", b"\x00"),
        ("63", b"\x00" * 7 + b"\x80"),
    ],
)
def test_cpu_mask(text: str, mask: bytes) -> None:
    assert cpu_mask(text) == mask


@pytest.mark.parametrize("text", ["3-1", "x", "1-y", "-1"])
def test_cpu_mask_rejects_bad_ranges(text: str) -> None:
    with pytest.raises(ValueError):
        cpu_mask(text)


def test_cpus_and_mems_are_allowed_cpus_and_nodes_on_v2() -> None:
    assert props(V2, cpu_cpus="0-2,4", cpu_mems="0") == (
        [("AllowedCPUs", "ay", b"\x17"), ("AllowedMemoryNodes", "ay", b"\x01")],
        [],
    )


def test_cpus_and_mems_on_v1_are_warnings() -> None:
    assert props(V1, cpu_cpus="0-2,4", cpu_mems="0") == (
        [],
        [
            "cpu.cpus is not enforced: systemd sets AllowedCPUs only on cgroup v2",
            "cpu.mems is not enforced: systemd sets AllowedMemoryNodes only on cgroup v2",
        ],
    )


# --- pids -----------------------------------------------------------------------------


@pytest.mark.parametrize("unified", [V1, V2])
def test_pids_limit_is_tasks_max(unified: bool) -> None:
    assert props(unified, pids_limit=100) == ([("TasksMax", "t", 100)], [])
    assert props(unified, pids_limit=-1) == ([("TasksMax", "t", UINT64_MAX)], [])
    assert props(unified, pids_limit=0) == ([], [])


# --- all together ---------------------------------------------------------------------


def test_nothing_set_is_no_property() -> None:
    assert props(V1) == ([], [])
    assert props(V2) == ([], [])


def test_every_limit_in_order_on_v2() -> None:
    r = Resources(
        memory_limit=GIB,
        memory_reservation=GIB // 4,
        memory_swap=2 * GIB,
        cpu_shares=2048,
        cpu_quota=200000,
        cpu_period=100000,
        cpu_cpus="1",
        cpu_mems="0",
        pids_limit=64,
        devices=(DeviceRule(False),),
    )
    assert resources.properties(r, V2) == (
        [
            ("MemoryMax", "t", GIB),
            ("MemoryLow", "t", GIB // 4),
            ("MemorySwapMax", "t", GIB),
            ("CPUWeight", "t", 200),
            ("CPUQuotaPeriodUSec", "t", 100000),
            ("CPUQuotaPerSecUSec", "t", 2_000_000),
            ("AllowedCPUs", "ay", b"\x02"),
            ("AllowedMemoryNodes", "ay", b"\x01"),
            ("TasksMax", "t", 64),
            *STRICT_DEFAULTS,
        ],
        [],
    )


def test_properties_without_devices_have_no_device_properties() -> None:
    r = Resources(pids_limit=5, devices=(DeviceRule(True),))
    assert resources.properties(r, V2, devices=False) == ([("TasksMax", "t", 5)], [])
    assert resources.properties(Resources(), V1, devices=False) == ([], [])


def test_properties_with_devices_by_default() -> None:
    assert resources.properties(Resources(), V1) == (STRICT_DEFAULTS, [])


def test_resources_rejects_unknown_names() -> None:
    with pytest.raises(TypeError) as e:
        Resources(memory=1, cpu=2)
    assert str(e.value) == "unknown resources: ['cpu', 'memory']"


def test_resources_defaults() -> None:
    r = Resources()
    assert r.devices == ()
    assert r.memory_limit is None and r.pids_limit is None


# --- devices --------------------------------------------------------------------------


def test_default_allow_list_is_runcs() -> None:
    assert DEFAULT_DEVICE_ALLOW[:2] == (("char-*", "m"), ("block-*", "m"))
    assert {
        ("/dev/char/1:3", "rwm"),
        ("/dev/char/1:5", "rwm"),
        ("/dev/char/1:7", "rwm"),
        ("/dev/char/1:8", "rwm"),
        ("/dev/char/1:9", "rwm"),
        ("/dev/char/5:0", "rwm"),
        ("/dev/char/5:2", "rwm"),
        ("char-pts", "rwm"),
    } <= set(DEFAULT_DEVICE_ALLOW)


def test_no_rules_is_strict_with_the_defaults() -> None:
    assert device_properties(()) == (STRICT_DEFAULTS, [])


def test_deny_all_is_strict_with_the_defaults() -> None:
    assert device_properties((DeviceRule(False),)) == (STRICT_DEFAULTS, [])


def test_allow_rule_adds_to_the_list() -> None:
    rules = (DeviceRule(False), DeviceRule(True, "c", 10, 200, "rwm"))
    assert device_properties(rules) == (
        [("DevicePolicy", "s", "strict"), ("DeviceAllow", "a(ss)", [*DEFAULTS, ("/dev/char/10:200", "rwm")])],
        [],
    )


def test_block_device_and_wildcard_allows() -> None:
    rules = (DeviceRule(True, "b", 8, 0, "r"), DeviceRule(True, "b", None, None, "rw"))
    assert device_properties(rules) == (
        [
            ("DevicePolicy", "s", "strict"),
            ("DeviceAllow", "a(ss)", [*DEFAULTS, ("/dev/block/8:0", "r"), ("block-*", "rw")]),
        ],
        [],
    )


def test_allow_all_lifts_the_policy() -> None:
    assert device_properties((DeviceRule(True),)) == ([("DevicePolicy", "s", "auto")], [])
    assert device_properties((DeviceRule(False), DeviceRule(True))) == ([("DevicePolicy", "s", "auto")], [])


def test_deny_all_after_allows_starts_afresh() -> None:
    rules = (DeviceRule(True, "c", 10, 200), DeviceRule(True), DeviceRule(False))
    assert device_properties(rules) == (STRICT_DEFAULTS, [])


def test_allows_after_allow_all_change_nothing() -> None:
    rules = (DeviceRule(True), DeviceRule(True, "c", 10, 200))
    assert device_properties(rules) == ([("DevicePolicy", "s", "auto")], [])


def test_deny_takes_back_an_identical_allow() -> None:
    rules = (DeviceRule(False, "c", 1, 3, "rwm"),)
    expected = [d for d in DEFAULTS if d != ("/dev/char/1:3", "rwm")]
    assert device_properties(rules) == (
        [("DevicePolicy", "s", "strict"), ("DeviceAllow", "a(ss)", expected)],
        [],
    )


def test_narrower_deny_is_a_warning() -> None:
    rules = (DeviceRule(False, "c", 1, 3, "w"),)
    assert device_properties(rules) == (
        STRICT_DEFAULTS,
        ["device deny rule for /dev/char/1:3 after the allow list cannot be expressed; ignored"],
    )


def test_whole_major_rule_is_a_warning() -> None:
    rules = (DeviceRule(True, "c", 136, None, "rwm"),)
    assert device_properties(rules) == (
        STRICT_DEFAULTS,
        ["device rule c 136:* cannot be expressed for systemd; ignored"],
    )


def test_runc_default_spec_devices() -> None:
    config = spec.parse(json.loads((DATA / "runc-spec.json").read_text()), "/b")
    assert resources.properties(config.resources, V1) == (STRICT_DEFAULTS, [])
    assert resources.properties(config.resources, V2) == (STRICT_DEFAULTS, [])


def test_device_rule_everything() -> None:
    assert DeviceRule(True).everything
    assert DeviceRule(False, "a", None, None, "r").everything
    assert not DeviceRule(True, "c").everything
    assert not DeviceRule(True, "a", 1, None).everything
