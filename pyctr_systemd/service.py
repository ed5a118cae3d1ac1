"""`pyctr service-start NAME`: the ExecStart of pyctr@NAME.service.

systemd has made the service's cgroup, with the definition's limits, and runs
this command in it. pyctr launches the container there as `pyctr run` would
(no scope: the service is the container's unit), waits until its payload is
exec'd, hands the payload to systemd as the service's main process
(MAINPID=, READY=1) and exits. The payload, PID 1 of its own pid namespace,
is then systemd's child: `systemctl kill`, `status`, the exit status,
Restart= and Result=oom-kill all act on it, and no Python stays resident.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pyctr_systemd import definitions, launcher, rootfs
from pyctr_systemd.errors import PyctrError, SystemdError
from pyctr_systemd.systemd import Systemd

SERVICE = "org.freedesktop.systemd1.Service"
HANDOVER_TIMEOUT = 10.0


def start(name: str) -> int:
    from pyctr_systemd.cli import run

    if not os.environ.get("NOTIFY_SOCKET"):
        raise PyctrError(f"service-start is run by systemd: use systemctl start {definitions.service(name)}")
    values: dict[str, Any] = {**definitions.load(name), "name": name}
    config = run.config(**values)
    spec = config.launch
    if not spec.rootfs:
        spec.rootfs, spec.ephemeral = rootfs.default(), True
    bus = Systemd()
    child = launcher.spawn(spec)
    try:
        child.expect(b"p")
        child.send(b"g")
        child.expect(b"c")
        child.send(b"s")
        error = child.error()  # waits for the exec (or the reason it failed)
        if error is not None:
            raise error
        _hand_over(bus, definitions.service(name), child.pid)
    except BaseException:
        os.kill(child.pid, 9)
        child.abort()
        raise
    return 0


def _hand_over(bus: Systemd, unit: str, pid: int) -> None:
    """Make `pid` the service's main process, and wait until systemd has taken it."""
    from pystemd.daemon import notify  # type: ignore[import]

    notify(False, f"MAINPID={pid}", "READY=1")
    deadline = time.monotonic() + HANDOVER_TIMEOUT
    while bus.unit_property(unit, SERVICE, "MainPID") != pid:
        if time.monotonic() > deadline:
            raise SystemdError(f"systemd did not take process {pid} as the main process of {unit}")
        time.sleep(0.001)
