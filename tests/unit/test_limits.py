import pytest

from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.limits import (
    UINT64_MAX,
    Limits,
    format_size,
    parse_size,
    shares_to_weight,
    unenforced,
    unit_properties,
    weight_to_shares,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64M", 64 << 20),
        ("64m", 64 << 20),
        ("64MiB", 64 << 20),
        ("64mb", 64 << 20),
        ("1.5G", 3 << 29),
        ("512k", 512 << 10),
        ("2T", 2 << 40),
        ("1048576", 1048576),
        ("100b", 100),
        (" 32M ", 32 << 20),
        ("0", 0),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text, "--memory") == expected


@pytest.mark.parametrize("text", ["", "M", "12Q", "1.2.3", "-5", "1e6", "64 M B", "٣M", "0x10", "99999999T"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match=r"--memory"):
        parse_size(text, "--memory")


@pytest.mark.parametrize("text", ["max", "infinity", "-1", "MAX"])
def test_unlimited_only_where_allowed(text: str) -> None:
    assert parse_size(text, "--memory-swap", unlimited_ok=True) == UINT64_MAX
    with pytest.raises(InvalidArgument):
        parse_size(text, "--memory")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (64 << 20, "64M"),
        (3 << 29, "1536M"),
        (1 << 30, "1G"),
        (1000, "1000"),
        (512 << 10, "512K"),
        (0, "0"),
        (UINT64_MAX, "infinity"),
    ],
)
def test_format_size(value: int, text: str) -> None:
    assert format_size(value) == text


def test_shares_weight_mapping_is_systemds() -> None:
    # cgroup_cpu_shares_to_weight(): the defaults map onto each other, and both clamp.
    assert shares_to_weight(1024) == 100
    assert shares_to_weight(128) == 12
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert weight_to_shares(100) == 1024
    assert weight_to_shares(1) == 10
    assert weight_to_shares(10000) == 102400


def test_properties_on_cgroup_v1() -> None:
    limits = Limits(memory=64 << 20, memory_swap=0, cpu_shares=512, cpus=0.5, pids=10)
    # No MemorySwapMax: systemd would show it and apply nothing on v1.
    assert unit_properties(limits, unified=False) == [
        ("MemoryMax", "t", 64 << 20),
        ("CPUShares", "t", 512),
        ("CPUQuotaPerSecUSec", "t", 500_000),
        ("TasksMax", "t", 10),
    ]
    assert unenforced(limits, unified=False) == [
        "--memory-swap is not enforced: systemd limits swap only on cgroup v2 (this system runs v1)"
    ]


def test_swap_limit_on_cgroup_v2() -> None:
    limits = Limits(memory_swap=0)
    assert unit_properties(limits, unified=True) == [("MemorySwapMax", "t", 0)]
    assert unenforced(limits, unified=True) == []
    assert unenforced(Limits(memory=1 << 20), unified=False) == []


def test_properties_on_cgroup_v2_convert_shares_to_weight() -> None:
    assert unit_properties(Limits(cpu_shares=512), unified=True) == [("CPUWeight", "t", 50)]
    assert unit_properties(Limits(cpu_weight=300), unified=True) == [("CPUWeight", "t", 300)]
    assert unit_properties(Limits(cpu_weight=300), unified=False) == [("CPUShares", "t", 3072)]


def test_no_limits_no_properties() -> None:
    assert unit_properties(Limits(), unified=False) == []
    assert unit_properties(Limits(), unified=True) == []


def test_a_pids_limit_of_minus_one_is_no_limit_as_dockers() -> None:
    assert unit_properties(Limits(pids=-1), unified=False) == [("TasksMax", "t", UINT64_MAX)]


def test_cpus_rounds_to_microseconds() -> None:
    assert unit_properties(Limits(cpus=1.5), unified=True) == [("CPUQuotaPerSecUSec", "t", 1_500_000)]
    assert unit_properties(Limits(cpus=0.01), unified=True) == [("CPUQuotaPerSecUSec", "t", 10_000)]
    # systemd keeps whole percent (CPUQuota=13%): 123.45 ms would be 120 ms after a daemon-reload
    assert unit_properties(Limits(cpus=0.12345), unified=True) == [("CPUQuotaPerSecUSec", "t", 130_000)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu_shares": 1}, "--cpu-shares: 1"),
        ({"cpu_shares": 262145}, "--cpu-shares"),
        ({"cpu_weight": 0}, "--cpu-weight"),
        ({"cpu_weight": 10001}, "--cpu-weight"),
        ({"pids": 0}, "--pids-limit"),
        ({"pids": -2}, "--pids-limit"),
        ({"memory": 0}, "--memory"),
        ({"cpus": 0.0}, "--cpus"),
        ({"cpus": -1.0}, "--cpus"),
        ({"cpus": 0.001}, "must be 0.01 to"),
        ({"cpus": float("inf")}, "--cpus: inf"),
        ({"cpus": float("nan")}, "--cpus: nan"),
        ({"cpus": 1e14}, "--cpus"),
        ({"cpu_shares": 512, "cpu_weight": 50}, "give one"),
    ],
)
def test_invalid_limits(kwargs: dict[str, int | float], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Limits(**kwargs)  # type: ignore[arg-type]
