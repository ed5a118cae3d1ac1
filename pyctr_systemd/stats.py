"""`pyctr stats`: what systemd accounts for each container, from its unit's properties.

Every container is a unit in pyctr.slice: pyctr-NAME.scope (pyctr run, OCI),
pyctr-NAME.service (run -d) or pyctr@NAME.service (defined). systemd already
keeps CPU time, memory and tasks for them (accounting is on for the slice),
so this asks systemd, never the cgroup files.
"""

from __future__ import annotations

from pyctr_systemd.limits import UINT64_MAX, format_size
from pyctr_systemd.systemd import Systemd

PATTERNS = ["pyctr-*.scope", "pyctr-*.service", "pyctr@*.service"]
_INTERFACES = {"scope": "org.freedesktop.systemd1.Scope", "service": "org.freedesktop.systemd1.Service"}
FIELDS = ("CPUUsageNSec", "MemoryCurrent", "MemoryMax", "TasksCurrent", "TasksMax")


def container_name(unit: str) -> str:
    stem = unit.rsplit(".", 1)[0]
    return stem.split("@", 1)[1] if stem.startswith("pyctr@") else stem.removeprefix("pyctr-")


def collect(bus: Systemd, wanted: list[str]) -> list[dict[str, object]]:
    """One row per running container (or per wanted name), numbers as systemd gives them."""
    rows = []
    for unit, state, path in sorted(bus.list_units(PATTERNS)):
        name = container_name(unit)
        if state != "active" or (wanted and name not in wanted):
            continue
        props = bus.unit_properties(path, _INTERFACES[unit.rsplit(".", 1)[1]])
        row: dict[str, object] = {"name": name, "unit": unit}
        row.update((f, _number(props.get(f))) for f in FIELDS)
        rows.append(row)
    return rows


def _number(value: object) -> int | None:
    """systemd's "not known" and "infinity" are both UINT64_MAX: None."""
    number = int(value) if value is not None else UINT64_MAX  # type: ignore[call-overload]
    return None if number == UINT64_MAX else number


def table(rows: list[dict[str, object]]) -> str:
    lines = [("NAME", "UNIT", "CPU", "MEMORY / MAX", "TASKS / MAX")]
    for r in rows:
        cpu = r["CPUUsageNSec"]
        lines.append(
            (
                str(r["name"]),
                str(r["unit"]),
                "-" if cpu is None else f"{int(cpu) / 1e9:.3f}s",  # type: ignore[call-overload]
                f"{_size(r['MemoryCurrent'])} / {_size(r['MemoryMax'])}",
                f"{_count(r['TasksCurrent'])} / {_count(r['TasksMax'])}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in lines
    )


def _size(value: object) -> str:
    if value is None:
        return "-"
    exact = format_size(int(value))  # type: ignore[call-overload]
    return exact if not exact.isdigit() else f"{int(exact) / 2**20:.1f}M"


def _count(value: object) -> str:
    return "-" if value is None else str(value)
