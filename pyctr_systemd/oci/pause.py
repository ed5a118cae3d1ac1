"""pause and resume: every process of the container frozen, or thawed."""

from __future__ import annotations

from pyctr_systemd import freezer
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.state import Store
from pyctr_systemd.systemd import Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Units


def pause(store: Store, container_id: str, *, bus: Units | None = None) -> None:
    record, _ = lifecycle.loaded(store, container_id, "pause")
    freezer.freeze(bus or Systemd(), record.unit, record.pid)


def resume(store: Store, container_id: str, *, bus: Units | None = None) -> None:
    record, _ = lifecycle.loaded(store, container_id, "resume")
    freezer.thaw(bus or Systemd(), record.unit, record.pid)
