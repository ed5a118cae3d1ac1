"""kill: a signal to the container's init, or with --all to every process of its unit."""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os

from pyctr_systemd.errors import InvalidArgument, SystemdError
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.state import Record, Store, alive
from pyctr_systemd.systemd import Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Units


def parse_signal(text: str) -> int:
    """A signal by number or name: 9, KILL, SIGKILL, kill."""
    import signal

    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        member = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if member is not None:
            return int(member)
    raise InvalidArgument(f"invalid signal {text!r}")


def kill(
    store: Store, container_id: str, sig: int, all_processes: bool = False, *, bus: Units | None = None
) -> None:
    """As runc: --all on a stopped container signals what is left in its unit and succeeds
    (containerd's shim sends it to every container it removes); a plain kill is refused."""
    if not all_processes:
        record, _ = lifecycle.loaded(store, container_id, "kill")
        signal_init(record, sig)
        return
    record = store.load(container_id)
    bus = bus or Systemd()
    stopped = lifecycle.status(store, record) == lifecycle.STOPPED
    if stopped and bus.invocation(record.unit) != record.invocation:
        return  # its unit is gone, or another container's now
    try:
        bus.kill(record.unit, "all", sig)
    except SystemdError:
        if not stopped:
            raise  # a stopped container's unit may end meanwhile


def signal_init(record: Record, sig: int) -> None:
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return
    try:
        if alive(record):  # checked after the pidfd is open: it holds the container's init
            _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
