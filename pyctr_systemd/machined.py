"""Registration with systemd-machined: `machinectl list/status/terminate` see the container.

Opt-in (`--machine`), because machined shows every registered machine to every
local user (`machinectl list` needs no privilege): the container's name, unit
and processes become visible to all of them. RegisterMachine binds the
machine to the unit its leader process is in (the container's scope or
service), so the registration ends with the unit, and `machinectl terminate`
stops that unit.
"""

from __future__ import annotations

from pyctr_systemd.errors import PyctrError
from pyctr_systemd.systemd import BusError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Units

MACHINED = "org.freedesktop.machine1"
PATH = "/org/freedesktop/machine1"
MANAGER = "org.freedesktop.machine1.Manager"


def register(bus: Units, name: str, leader: int, root: str) -> None:
    """Register the container whose first process is `leader` as machine `name`."""
    try:
        bus.call(
            MACHINED,
            PATH,
            MANAGER,
            "RegisterMachine",
            "sayssus",
            name,
            b"",
            "pyctr",
            "container",
            leader,
            root,
        )
    except BusError as e:
        raise PyctrError(
            f"cannot register {name} with systemd-machined (is systemd-container installed?): {e}"
        ) from None
