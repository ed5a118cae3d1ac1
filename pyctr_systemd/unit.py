"""Which unit a container is, and the properties it is created with.

Pure: linux.cgroupsPath and `--systemd-cgroup` name the unit the way runc's
systemd driver does ("slice:prefix:name" -> prefix-name.scope in slice), and
`org.systemd.property.NAME` annotations become properties, their values
written in GVariant text as runc reads them ("uint64 100", "'text'", "true").
"""

from __future__ import annotations

from pyctr_systemd import names
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.limits import Property

STOP_TIMEOUT_USEC = 10_000_000  # docker's default grace before SIGKILL
# What `pyctr stats` and systemd-cgtop report, whatever the slice says.
ACCOUNTING: list[Property] = [
    ("CPUAccounting", "b", True),
    ("MemoryAccounting", "b", True),
    ("TasksAccounting", "b", True),
]
ANNOTATION_PREFIX = "org.systemd.property."
_TYPED = {"uint64": "t", "int64": "x", "uint32": "u", "int32": "i", "uint16": "q", "int16": "n", "byte": "y"}
_TYPED.update({f"@{sig}": sig for sig in _TYPED.values()})


class UnitName:
    __slots__ = ("unit", "slice")

    def __init__(self, unit: str, slice: str) -> None:
        self.unit, self.slice = unit, slice


def from_cgroups_path(
    cgroups_path: str, systemd_cgroup: bool, container_id: str
) -> tuple[UnitName, list[str]]:
    """The unit for a container, and warnings about a cgroupsPath pyctr cannot follow."""
    default = UnitName(names.scope_unit(container_id), names.SLICE)
    if not systemd_cgroup:
        if cgroups_path:
            return default, [
                f"linux.cgroupsPath {cgroups_path} is a cgroupfs path, which pyctr does not use: the "
                f"container is {default.unit} in {default.slice} (--systemd-cgroup reads slice:prefix:name)"
            ]
        return default, []
    if not cgroups_path:
        return default, []
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise InvalidArgument(
            f"config.json: linux.cgroupsPath: expected slice:prefix:name with --systemd-cgroup, "
            f"not {cgroups_path!r}"
        )
    slice_, prefix, name = parts
    if name.endswith(".slice"):
        raise InvalidArgument(
            "config.json: linux.cgroupsPath: a container in a slice of its own is not supported"
        )
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    for part, what in ((slice_ or names.SLICE, "slice"), (unit, "unit")):
        if not _unit_name_ok(part):
            raise InvalidArgument(f"config.json: linux.cgroupsPath: {part!r} is not a valid {what} name")
    return UnitName(unit, slice_ or names.SLICE), []


def _unit_name_ok(name: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
    return 0 < len(name) <= 255 and set(name) <= allowed and "." in name


def parse_property_value(text: str) -> tuple[str, object]:
    """(D-Bus signature, value) for GVariant text such as "uint64 100" or "['a', 'b']"."""
    t = text.strip()
    if t in ("true", "false"):
        return "b", t == "true"
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return "s", t[1:-1]
    if t.startswith("[") and t.endswith("]"):
        values = [parse_property_value(i) for i in _split_items(t[1:-1])]
        if all(sig == "s" for sig, _ in values):
            return "as", [v for _, v in values]
        raise ValueError("only arrays of strings are supported")
    word, _, rest = t.partition(" ")
    if word in _TYPED:
        return _TYPED[word], int(rest.strip(), 0)
    return "i", int(t, 0)


def _split_items(text: str) -> list[str]:
    """The items of a GVariant array's text, split at commas outside quotes."""
    items, current, quote = [], "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            items.append(current)
            current = ""
            continue
        current += ch
    items.append(current)
    return [i.strip() for i in items if i.strip()]


# What an annotation may set: how much of the machine the container gets, and what
# systemd counts of it. Anything else of a unit runs commands (ExecStopPost=), picks
# users, devices, environments, dependencies or sandboxing: config.json, which a
# `pyctr define` of someone else's bundle trusts, must not reach those.
ANNOTATION_PROPERTIES = frozenset(
    {
        *(f"{kind}Accounting" for kind in ("CPU", "Memory", "Tasks", "IO", "BlockIO", "IP")),
        "CPUWeight",
        "StartupCPUWeight",
        "CPUShares",
        "StartupCPUShares",
        "CPUQuotaPerSecUSec",
        "CPUQuotaPeriodUSec",
        "AllowedCPUs",
        "StartupAllowedCPUs",
        "AllowedMemoryNodes",
        "StartupAllowedMemoryNodes",
        "MemoryMin",
        "MemoryLow",
        "MemoryHigh",
        "MemoryMax",
        "MemorySwapMax",
        "MemoryLimit",
        "TasksMax",
        "IOWeight",
        "StartupIOWeight",
        "BlockIOWeight",
        "StartupBlockIOWeight",
        "TimeoutStopUSec",
    }
)


def annotation_properties(annotations: dict[str, str]) -> list[Property]:
    props: list[Property] = []
    for key, text in annotations.items():
        if key.startswith(ANNOTATION_PREFIX):
            name = key[len(ANNOTATION_PREFIX) :]
            if name not in ANNOTATION_PROPERTIES:
                raise InvalidArgument(
                    f"config.json: annotations.{key}: {name} is not a resource or accounting "
                    "property, the only ones pyctr sets from annotations"
                )
            try:
                sig, value = parse_property_value(text)
            except (ValueError, RecursionError):
                raise InvalidArgument(
                    f"config.json: annotations.{key}: cannot read {text!r} as a D-Bus value "
                    "(examples: uint64 100, 'text', true)"
                ) from None
            props.append((name, sig, value))
    return props


def scope_properties(description: str, slice: str, pid: int, extra: list[Property]) -> list[Property]:
    """A container's scope: its process, where it lives, and `extra` (limits, devices...)."""
    return [
        ("Description", "s", description),
        ("Slice", "s", slice),
        ("PIDs", "au", [pid]),
        # Collect the unit even when it failed (an OOM kill fails it on v2).
        ("CollectMode", "s", "inactive-or-failed"),
        ("TimeoutStopUSec", "t", STOP_TIMEOUT_USEC),
        *ACCOUNTING,
        *extra,
    ]
