"""linux.resources of a config.json as systemd unit properties.

runc's systemd driver sets the same properties (libcontainer/cgroups/systemd);
pyctr sets nothing else, so `systemctl show` is the whole truth about a
container's limits. Pure functions: the cgroup layout is an argument.
"""

from __future__ import annotations

from pyctr_systemd.limits import UINT64_MAX, Property, cpu_quota, shares_to_weight

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


# systemd's own bound on a CPU set (CPU_SET_MAX_NCPU is 8192 in 252); one far past any
# machine would make a mask of megabytes.
MAX_CPUS = 8192


def cpu_mask(text: str) -> bytes:
    """systemd's AllowedCPUs bytes (a little-endian bit mask) for a cpuset list like "0-2,4"."""
    bits = 0
    for part in text.split(","):
        if not part.strip():
            continue
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if first < 0 or last < first or last >= MAX_CPUS:
            raise ValueError(f"invalid CPU range {part!r}")
        bits |= (1 << (last + 1)) - (1 << first)
    return bits.to_bytes((bits.bit_length() + 7) // 8 or 1, "little")


def cpu_list(mask: bytes) -> str:
    """The cpuset list ("0-2,4") of an AllowedCPUs mask: cpu_mask's inverse."""
    bits = int.from_bytes(mask, "little")
    cpus = [n for n in range(bits.bit_length()) if bits >> n & 1]
    ranges: list[list[int]] = []
    for n in cpus:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def properties(
    r: Resources, unified: bool, devices: bool = True, v1_cpuset: bool = False
) -> tuple[list[Property], list[str]]:
    """(unit properties, warnings for what this cgroup layout cannot enforce).

    devices: also the device policy (at create; an update changes it only if given rules).
    v1_cpuset: the caller sets cpus and mems on cgroup v1 itself (pyctr_systemd.hierarchies).
    """
    props: list[Property] = []
    warnings: list[str] = []
    if r.memory_limit is not None:
        props.append(("MemoryMax", "t", _bytes(r.memory_limit)))
    if r.memory_reservation is not None:
        if unified:
            props.append(("MemoryLow", "t", _bytes(r.memory_reservation)))
        else:
            warnings.append("memory.reservation is not enforced: systemd sets MemoryLow only on cgroup v2")
    if r.memory_swap is not None:
        if not unified:
            warnings.append("memory.swap is not enforced: systemd limits swap only on cgroup v2")
        elif r.memory_swap < 0 or r.memory_limit is None or r.memory_limit < 0:
            props.append(("MemorySwapMax", "t", UINT64_MAX))
        else:  # the runtime-spec's swap is memory plus swap; systemd's is swap alone
            props.append(("MemorySwapMax", "t", max(0, r.memory_swap - r.memory_limit)))
    if r.cpu_shares is not None:
        if unified:
            props.append(("CPUWeight", "t", shares_to_weight(r.cpu_shares)))
        else:
            props.append(("CPUShares", "t", r.cpu_shares))
    if r.cpu_quota is not None or r.cpu_period is not None:
        period = r.cpu_period or DEFAULT_CPU_PERIOD
        if r.cpu_period is not None:
            props.append(("CPUQuotaPeriodUSec", "t", period))
        if r.cpu_quota:  # 0 is no quota, as in runc (systemd refuses a zero one)
            per_sec = UINT64_MAX if r.cpu_quota < 0 else cpu_quota(r.cpu_quota * 1_000_000 // period)
            props.append(("CPUQuotaPerSecUSec", "t", per_sec))
    for name, value, prop in (
        ("cpus", r.cpu_cpus, "AllowedCPUs"),
        ("mems", r.cpu_mems, "AllowedMemoryNodes"),
    ):
        if value:
            if unified:
                props.append((prop, "ay", cpu_mask(value)))
            elif not v1_cpuset:
                warnings.append(f"cpu.{name} is not enforced: systemd sets {prop} only on cgroup v2")
    if r.pids_limit is not None and r.pids_limit != 0:
        props.append(("TasksMax", "t", UINT64_MAX if r.pids_limit < 0 else r.pids_limit))
    if not devices:
        return props, warnings
    device_props, device_warnings = device_properties(r.devices)
    return props + device_props, warnings + device_warnings


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
