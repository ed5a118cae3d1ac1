"""ps: the processes of a container's unit, as pids or as a ps(1) table."""

from __future__ import annotations

from pyctr_systemd import cgroups
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.state import Store
from pyctr_systemd.systemd import SCOPE, Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Units


def pids(store: Store, container_id: str, *, bus: Units | None = None) -> list[int]:
    record, _ = lifecycle.loaded(store, container_id, "ps")
    group = (bus or Systemd()).unit_property(record.unit, SCOPE, "ControlGroup")
    return cgroups.procs(str(group)) if group else []


def ps_table(found: list[int], ps_args: list[str]) -> str:
    """`ps ps_args` limited to `found`, header kept (what runc ps prints)."""
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise InvalidArgument(f"ps failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("ps output has no PID column (give ps arguments that print one)")
    column = header.index("PID")
    wanted = {str(p) for p in found}
    keep = [line for line in lines[1:] if _field(line, column) in wanted]
    return "\n".join([lines[0], *keep]) + "\n"


def _field(line: str, column: int) -> str:
    fields = line.split()
    return fields[column] if column < len(fields) else ""
