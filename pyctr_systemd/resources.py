"""linux.resources of a config.json as systemd unit properties.

runc's systemd driver sets the same properties (libcontainer/cgroups/systemd);
pyctr sets nothing else, so `systemctl show` is the whole truth about a
container's limits. Pure functions: the cgroup layout is an argument.
"""

from __future__ import annotations

from pyctr_systemd.limits import UINT64_MAX, Limits, Property, unit_properties

DEFAULT_CPU_PERIOD = 100_000
# runc's default allow list (libcontainer/specconv AllowedDevices), as systemd spells devices.
DEFAULT_DEVICE_ALLOW = (
    ("char-*", "m"),
    ("block-*", "m"),
    ("/dev/char/1:3", "rwm"),  # null
    ("/dev/char/1:5", "rwm"),  # zero
    ("/dev/char/1:7", "rwm"),  # full
    ("/dev/char/1:8", "rwm"),  # random
    ("/dev/char/1:9", "rwm"),  # urandom
    ("/dev/char/5:0", "rwm"),  # tty
    ("/dev/char/5:1", "rwm"),  # console
    ("/dev/char/5:2", "rwm"),  # ptmx
    ("char-pts", "rwm"),
)


class DeviceRule:
    """One linux.resources.devices entry; None for major/minor is the wildcard."""

    __slots__ = ("allow", "kind", "major", "minor", "access")

    def __init__(self, allow: bool, kind: str = "a", major: int | None = None, minor: int | None = None,
                 access: str = "rwm") -> None:  # fmt: skip
        self.allow, self.kind, self.major, self.minor, self.access = allow, kind, major, minor, access

    @property
    def everything(self) -> bool:
        return self.kind == "a" and self.major is None and self.minor is None


class Resources:
    """The subset of linux.resources pyctr maps to unit properties (-1 is unlimited)."""

    __slots__ = (
        "memory_limit",
        "memory_reservation",
        "memory_swap",
        "cpu_shares",
        "cpu_quota",
        "cpu_period",
        "cpu_cpus",
        "cpu_mems",
        "pids_limit",
        "devices",
    )

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            setattr(self, name, values.pop(name, () if name == "devices" else None))
        if values:
            raise TypeError(f"unknown resources: {sorted(values)}")

    memory_limit: int | None
    memory_reservation: int | None
    memory_swap: int | None
    cpu_shares: int | None
    cpu_quota: int | None
    cpu_period: int | None
    cpu_cpus: str | None
    cpu_mems: str | None
    pids_limit: int | None
    devices: tuple[DeviceRule, ...]


def _bytes(value: int) -> int:
    return UINT64_MAX if value < 0 else value


def limits(
    r: Resources, unified: bool, devices: bool = True, v1_cpuset: bool = False
) -> tuple[Limits, list[str]]:
    """(the container's limits, warnings for what this cgroup layout cannot enforce).

    devices: also the device policy (at create; an update changes it only if given rules).
    v1_cpuset: the caller sets cpus and mems on cgroup v1 itself (pyctr_systemd.hierarchies).
    """
    found = Limits.of(
        memory=None if r.memory_limit is None else _bytes(r.memory_limit),
        memory_low=None if r.memory_reservation is None else _bytes(r.memory_reservation),
        memory_swap=_swap(r),
        cpu_shares=r.cpu_shares,
        cpu_period=r.cpu_period,
        # 0 is no quota, as in runc (systemd refuses a zero one)
        cpu_quota=_quota(r.cpu_quota, r.cpu_period or DEFAULT_CPU_PERIOD) if r.cpu_quota else None,
        allowed_cpus=r.cpu_cpus or None,
        allowed_mems=r.cpu_mems or None,
        pids=None if not r.pids_limit else _bytes(r.pids_limit),
    )
    warnings = [] if unified else _unenforced_on_v1(r, v1_cpuset)
    if devices:
        device_props, device_warnings = device_properties(r.devices)
        settings = {name: value for name, _, value in device_props}
        found.device_policy = str(settings["DevicePolicy"])
        found.device_allow = settings.get("DeviceAllow")  # type: ignore[assignment]
        warnings += device_warnings
    return found, warnings


def properties(
    r: Resources, unified: bool, devices: bool = True, v1_cpuset: bool = False
) -> tuple[list[Property], list[str]]:
    """(unit properties, warnings): limits() through the one mapping, limits.unit_properties."""
    found, warnings = limits(r, unified, devices, v1_cpuset)
    return unit_properties(found, unified), warnings


def _swap(r: Resources) -> int | None:
    """systemd's swap alone, from the runtime-spec's memory plus swap."""
    if r.memory_swap is None:
        return None
    if r.memory_swap < 0 or r.memory_limit is None or r.memory_limit < 0:
        return UINT64_MAX
    return max(0, r.memory_swap - r.memory_limit)


def _quota(quota: int, period: int) -> int:
    return UINT64_MAX if quota < 0 else quota * 1_000_000 // period


def _unenforced_on_v1(r: Resources, v1_cpuset: bool) -> list[str]:
    warnings = []
    if r.memory_reservation is not None:
        warnings.append("memory.reservation is not enforced: systemd sets MemoryLow only on cgroup v2")
    if r.memory_swap is not None:
        warnings.append("memory.swap is not enforced: systemd limits swap only on cgroup v2")
    for name, value, prop in (
        ("cpus", r.cpu_cpus, "AllowedCPUs"),
        ("mems", r.cpu_mems, "AllowedMemoryNodes"),
    ):
        if value and not v1_cpuset:
            warnings.append(f"cpu.{name} is not enforced: systemd sets {prop} only on cgroup v2")
    return warnings


def _device_name(rule: DeviceRule) -> str | None:
    group = {"c": "char", "b": "block"}.get(rule.kind)
    if group is None or rule.major is None:
        return f"{group}-*" if group else None
    if rule.minor is None:
        return None  # a whole major: systemd names it by /proc/devices group only
    return f"/dev/{group}/{rule.major}:{rule.minor}"


def device_properties(rules: tuple[DeviceRule, ...]) -> tuple[list[Property], list[str]]:
    """DevicePolicy and DeviceAllow for the device rules plus runc's default devices.

    systemd keeps an allow list; the rules are an ordered allow/deny list. A
    deny-all starts the list afresh; allows add to it; an allow-all lifts the
    policy; a narrower deny can only take back an identical allow.
    """
    allowed: list[tuple[str, str]] = list(DEFAULT_DEVICE_ALLOW)
    policy, warnings = "strict", []
    for rule in rules:
        if rule.everything:
            policy = "auto" if rule.allow else "strict"
            allowed = [] if rule.allow else list(DEFAULT_DEVICE_ALLOW)
            continue
        name = _device_name(rule)
        if name is None:
            warnings.append(
                f"device rule {rule.kind} {rule.major}:* cannot be expressed for systemd; ignored"
            )
            continue
        entry = (name, rule.access or "rwm")
        if rule.allow:
            allowed.append(entry)
        elif entry in allowed:
            allowed.remove(entry)
        else:
            warnings.append(f"device deny rule for {name} after the allow list cannot be expressed; ignored")
    props: list[Property] = [("DevicePolicy", "s", policy)]
    if policy == "strict":
        props.append(("DeviceAllow", "a(ss)", allowed))
    return props, warnings
