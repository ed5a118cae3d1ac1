"""state and list: the runtime-spec state of one container, or of all under --root."""

from __future__ import annotations

from pyctr_systemd import log
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.state import DamagedState, NoSuchContainer, Store, UnsafeState, oci_state


def state(store: Store, container_id: str) -> dict[str, object]:
    record = store.load(container_id)
    return oci_state(record, lifecycle.status(store, record))


def list_all(store: Store) -> list[dict[str, object]]:
    found = []
    for container_id in store.ids():
        try:
            found.append(state(store, container_id))
        except NoSuchContainer:
            continue  # deleted meanwhile
        except (UnsafeState, DamagedState) as e:
            log.warning(str(e))
    return found
