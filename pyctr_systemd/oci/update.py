"""update: new limits for a running container, live, through its unit's properties."""

from __future__ import annotations

from pyctr_systemd import hierarchies, log, resources, spec
from pyctr_systemd.host import HOST
from pyctr_systemd.limits import parse_size
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.state import Store
from pyctr_systemd.systemd import Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Host, Units


def from_flags(
    *, memory: str | None = None, memory_reservation: str | None = None, memory_swap: str | None = None,
    pids_limit: int | None = None, cpu_shares: int | None = None, cpu_quota: int | None = None,
    cpu_period: int | None = None, cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
) -> resources.Resources:  # fmt: skip
    """The resources runc's update flags ask for (sizes as in 64M; -1 is unlimited, and 0,
    as runc reads it, leaves a limit as it is)."""
    return resources.Resources(
        memory_limit=_size(memory, "--memory"),
        memory_reservation=_size(memory_reservation, "--memory-reservation"),
        memory_swap=_size(memory_swap, "--memory-swap"),
        pids_limit=pids_limit or None,
        cpu_shares=cpu_shares,
        cpu_quota=cpu_quota or None,
        cpu_period=cpu_period,
        cpu_cpus=spec.cpu_list(cpuset_cpus, "--cpuset-cpus"),
        cpu_mems=spec.cpu_list(cpuset_mems, "--cpuset-mems"),
    )


def _size(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    return -1 if value == "-1" else parse_size(value, option) or None


def update(
    store: Store, container_id: str, res: resources.Resources, warnings: list[str], *,
    bus: Units | None = None, host: Host = HOST,
) -> None:  # fmt: skip
    record, _ = lifecycle.loaded(store, container_id, "update")
    unified = host.unified()
    props, more = resources.properties(res, unified, devices=bool(res.devices), v1_cpuset=True)
    for message in warnings + more:
        log.warning(message)
    if props:
        (bus or Systemd()).set_properties(record.unit, props)
    if not unified and (res.cpu_cpus or res.cpu_mems):
        hierarchies.update_cpuset(record.cgroup, res.cpu_cpus, res.cpu_mems)
