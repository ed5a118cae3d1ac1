"""delete (and gc): a container's unit, groups, state and poststop hooks; what a killed
create left."""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os
import select

from pyctr_systemd import freezer
from pyctr_systemd.errors import PyctrError, SystemdError
from pyctr_systemd.host import HOST
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.oci.kill import signal_init
from pyctr_systemd.oci.start import run_recorded_hooks
from pyctr_systemd.state import DamagedState, InvalidState, NoSuchContainer, Record, Store, named_for
from pyctr_systemd.systemd import UNIT, Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Host, Units

KILL_WAIT = 10.0  # seconds for a killed container's init to go


def delete(
    store: Store, container_id: str, force: bool = False, *, bus: Units | None = None, host: Host = HOST
) -> None:
    try:
        record = store.load(container_id)
    except NoSuchContainer:
        if os.path.isdir(os.path.join(store.root, container_id)):  # a create killed midway
            remove_unfinished(store, bus or Systemd(), host, container_id)
        if force:
            return
        raise
    except DamagedState:
        if not force:
            raise
        remove_unfinished(store, bus or Systemd(), host, container_id)
        return
    status = lifecycle.status(store, record)
    if not force:
        lifecycle.check("delete", record, status)
    bus = bus or Systemd()
    if status != lifecycle.STOPPED:
        if status == lifecycle.PAUSED:
            freezer.thaw(bus, record.unit, record.pid)
        _kill_and_wait(bus, record)
    # A stopped container's unit may be gone, or its name another container's now.
    current = record.invocation if status != lifecycle.STOPPED else bus.invocation(record.unit)
    if current == record.invocation:
        bus.stop(record.unit)
    if current in (record.invocation, ""):  # else the groups of that name are the other's
        freezer.forget(record.unit)
        host.remove_groups(record.cgroup)
    run_recorded_hooks(record, "poststop", "stopped")
    store.remove(container_id)


def remove_unfinished(store: Store, bus: Units, host: Host, container_id: str) -> list[str]:
    """What a create killed midway left, or a container whose state is damaged: its unit
    (a launcher may wait in it for a start that never comes), pyctr's v1 groups, its
    directory. The units it stopped."""
    if store.being_created(container_id):
        raise InvalidState(f"cannot delete container {container_id}: it is being created")
    stopped = []
    for name, _, _ in bus.list_units([f"*-{container_id}.scope", f"{container_id}.scope"]):
        description = bus.unit_property(name, UNIT, "Description")
        if not named_for(name, container_id) or description != f"pyctr container {container_id}":
            continue  # a unit of that name that pyctr did not make for this container
        try:
            bus.kill(name, "all", _signal.SIGKILL)
        except SystemdError:
            pass  # it went meanwhile
        bus.stop(name)
        freezer.forget(name)
        stopped.append(name)
    # Its unit may have gone by itself, leaving the groups systemd does not manage.
    host.remove_orphans(lambda name: named_for(name, container_id), 0)
    store.remove(container_id)
    return stopped


def gc(store: Store, *, bus: Units | None = None, host: Host = HOST) -> list[str]:
    """Remove what pyctr processes killed midway left: units, state directories, and the
    empty v1 groups of scopes that are gone. What it removed, a line each."""
    bus = bus or Systemd()
    done = []
    for container_id in store.unfinished():
        units = remove_unfinished(store, bus, host, container_id)
        done.append(f"{container_id}: removed {', '.join([*units, 'its state'])}")
    live = {name for name, _, _ in bus.list_units(["*.scope"])}
    for group in host.remove_orphans(lambda name: name not in live, 2.0):
        done.append(f"removed the empty group {group}")
    return done


def _kill_and_wait(bus: Units, record: Record) -> None:
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return
    try:
        try:
            bus.kill(record.unit, "all", _signal.SIGKILL)
        except SystemdError:
            signal_init(record, _signal.SIGKILL)  # its unit is gone already
        if not select.select([pidfd], [], [], KILL_WAIT)[0]:
            raise PyctrError(f"container {record.id} did not end within {KILL_WAIT:.0f}s of SIGKILL")
    finally:
        os.close(pidfd)
