"""Resource limits as the user writes them, and the unit properties they become.

systemd owns the cgroups: a limit is never a cgroup file we write, only a
property of the container's unit, (name, D-Bus signature, value) as listed in
org.freedesktop.systemd1(5) and systemd.resource-control(5).
"""

from __future__ import annotations

from pyctr_systemd.errors import InvalidArgument

Property = tuple[str, str, object]

UINT64_MAX = 2**64 - 1  # systemd's "infinity"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_UNLIMITED = ("max", "infinity", "-1")

# systemd's ranges and defaults (systemd.resource-control(5)).
CPU_SHARES_MIN, CPU_SHARES_MAX, CPU_SHARES_DEFAULT = 2, 262144, 1024
CPU_WEIGHT_MIN, CPU_WEIGHT_MAX, CPU_WEIGHT_DEFAULT = 1, 10000, 100
# The kernel's smallest CFS quota is 1 ms per 100 ms period, systemd's default.
CPUS_MIN = 0.01
CPUS_MAX = 1_000_000.0  # far above any machine, well inside CPUQuotaPerSecUSec's uint64


def parse_size(text: str, option: str, unlimited_ok: bool = False) -> int:
    """Bytes from "64M", "1.5g", "512KiB", "100mb" or "1048576"; units are powers of 1024."""
    s = text.strip().lower()
    if unlimited_ok and s in _UNLIMITED:
        return UINT64_MAX
    s = s.removesuffix("ib") if s.endswith("ib") else s.removesuffix("b")
    number, unit = (s[:-1], s[-1]) if s[-1:] in ("k", "m", "g", "t") else (s, "")
    if not number.isascii() or not number.replace(".", "", 1).isdigit():
        raise InvalidArgument(f"invalid size for {option}: {text!r} (use e.g. 64M, 1.5G or 1048576)")
    value = int(float(number) * _UNITS[unit])
    if value >= UINT64_MAX:
        raise InvalidArgument(f"invalid size for {option}: {text!r} is too large")
    return value


def format_size(value: int) -> str:
    """The shortest exact systemd spelling: 67108864 -> "64M"."""
    if value == UINT64_MAX:
        return "infinity"
    for suffix in "TGMK":
        unit = _UNITS[suffix.lower()]
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


class Limits:
    """A container's limits, as systemd's resource-control settings; None means "not set".

    `pyctr run`'s options make one (checked here, in the options' words); a config.json's
    linux.resources make one too (resources.limits). unit_properties is the one mapping of
    either to unit properties, for a scope, a transient service and a drop-in alike.
    cpu_quota is CPU time per second in µs; sizes are bytes, UINT64_MAX "infinity".
    """

    __slots__ = (
        "memory",
        "memory_low",
        "memory_swap",
        "cpu_shares",
        "cpu_weight",
        "cpu_quota",
        "cpu_period",
        "allowed_cpus",
        "allowed_mems",
        "pids",
        "device_policy",
        "device_allow",
    )

    memory: int | None
    memory_low: int | None
    memory_swap: int | None  # swap alone, as systemd counts it
    cpu_shares: int | None
    cpu_weight: int | None
    cpu_quota: int | None
    cpu_period: int | None
    allowed_cpus: str | None
    allowed_mems: str | None
    pids: int | None
    device_policy: str | None
    device_allow: list[tuple[str, str]] | None

    def __init__(
        self,
        *,
        memory: int | None = None,
        memory_swap: int | None = None,
        cpu_shares: int | None = None,
        cpu_weight: int | None = None,
        cpus: float | None = None,
        pids: int | None = None,
        device_policy: str | None = None,
    ) -> None:
        """The limits of `pyctr run`'s options, checked."""
        _check_range("--cpu-shares", cpu_shares, CPU_SHARES_MIN, CPU_SHARES_MAX)
        _check_range("--cpu-weight", cpu_weight, CPU_WEIGHT_MIN, CPU_WEIGHT_MAX)
        if pids != -1:  # docker's "no limit"
            _check_range("--pids-limit", pids, 1, UINT64_MAX - 1)
        if cpu_shares is not None and cpu_weight is not None:
            raise InvalidArgument("--cpu-shares and --cpu-weight are two ways to say the same; give one")
        if memory == 0:
            raise InvalidArgument("invalid value for --memory: 0 (must be more than 0)")
        if cpus is not None and not CPUS_MIN <= cpus <= CPUS_MAX:
            raise InvalidArgument(f"invalid value for --cpus: {cpus} (must be {CPUS_MIN} to {CPUS_MAX})")
        for name in self.__slots__:
            setattr(self, name, None)
        self.memory, self.memory_swap = memory, memory_swap
        self.pids = UINT64_MAX if pids == -1 else pids
        self.cpu_shares, self.cpu_weight = cpu_shares, cpu_weight
        self.cpu_quota = None if cpus is None else round(cpus * 1_000_000)
        self.device_policy = device_policy

    @classmethod
    def of(cls, **values: object) -> Limits:
        """Limits from settings already checked (a parsed config.json's)."""
        found = cls.__new__(cls)
        for name in cls.__slots__:
            setattr(found, name, values.pop(name, None))
        if values:
            raise TypeError(f"unknown limits: {sorted(values)}")
        return found


def _check_range(option: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidArgument(f"invalid value for {option}: {value} (must be {low} to {high})")


def shares_to_weight(shares: int) -> int:
    """systemd's own mapping (cgroup_cpu_shares_to_weight): 1024 shares is weight 100."""
    return max(CPU_WEIGHT_MIN, min(CPU_WEIGHT_MAX, shares * CPU_WEIGHT_DEFAULT // CPU_SHARES_DEFAULT))


def weight_to_shares(weight: int) -> int:
    return max(CPU_SHARES_MIN, min(CPU_SHARES_MAX, weight * CPU_SHARES_DEFAULT // CPU_WEIGHT_DEFAULT))


def unit_properties(limits: Limits, unified: bool) -> list[Property]:
    """The unit properties for `limits`; `unified` is True on a cgroup v2 system.

    What systemd sets only on v2 (MemoryLow, MemorySwapMax, AllowedCPUs and
    AllowedMemoryNodes) is left out on v1: it would show the property and set nothing.
    Whoever made the limits warns about that in its user's words (unenforced,
    resources.limits). CPU weight has two spellings: CPUShares (v1 cpu.shares) and
    CPUWeight (v2 cpu.weight); the one the running layout uses is set, so `systemctl
    show` reports what the kernel enforces.
    """
    props: list[Property] = []
    if limits.memory is not None:
        props.append(("MemoryMax", "t", limits.memory))
    if limits.memory_low is not None and unified:
        props.append(("MemoryLow", "t", limits.memory_low))
    if limits.memory_swap is not None and unified:
        props.append(("MemorySwapMax", "t", limits.memory_swap))
    props += _cpu_weight(limits.cpu_shares, limits.cpu_weight, unified)
    if limits.cpu_period is not None:
        props.append(("CPUQuotaPeriodUSec", "t", limits.cpu_period))
    if limits.cpu_quota is not None:
        props.append(("CPUQuotaPerSecUSec", "t", cpu_quota(limits.cpu_quota)))
    if unified and limits.allowed_cpus:
        props.append(("AllowedCPUs", "ay", cpu_mask(limits.allowed_cpus)))
    if unified and limits.allowed_mems:
        props.append(("AllowedMemoryNodes", "ay", cpu_mask(limits.allowed_mems)))
    if limits.pids is not None:
        props.append(("TasksMax", "t", limits.pids))
    if limits.device_policy is not None:
        props.append(("DevicePolicy", "s", limits.device_policy))
    if limits.device_allow is not None:
        props.append(("DeviceAllow", "a(ss)", limits.device_allow))
    return props


def _cpu_weight(shares: int | None, weight: int | None, unified: bool) -> list[Property]:
    if unified and shares is not None:
        weight = shares_to_weight(shares)
    elif not unified and weight is not None:
        shares = weight_to_shares(weight)
    if unified and weight is not None:
        return [("CPUWeight", "t", weight)]
    if not unified and shares is not None:
        return [("CPUShares", "t", shares)]
    return []


def cpu_quota(usec_per_sec: int) -> int:
    """CPUQuotaPerSecUSec as systemd keeps it: in whole percent (10 ms a second), rounded
    up, as runc rounds it. systemd writes a transient unit's quota as CPUQuota=N%, so any
    other value would shrink at the next daemon-reload; a drop-in takes only N% too."""
    if usec_per_sec == UINT64_MAX:
        return usec_per_sec
    return -(-usec_per_sec // 10_000) * 10_000


def unenforced(limits: Limits, unified: bool) -> list[str]:
    """Warnings for limits this system cannot enforce through systemd.

    systemd applies MemorySwapMax only on the unified hierarchy; on v1 it would
    show the property and set nothing, so pyctr does not set it there and says so.
    """
    if limits.memory_swap is not None and not unified:
        return ["--memory-swap is not enforced: systemd limits swap only on cgroup v2 (this system runs v1)"]
    return []


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
