"""A container's unit and first process (create, shared by `pyctr run` and the
OCI verbs), and `pyctr run`'s life in the foreground: launch, wait, report.

The order matters for leaving nothing behind: the bus is reached before any
process exists; the child is forked and prepares the container's root while
systemd creates the scope with the child in it; only once the child is in the
unit, under its limits, may it exec the payload. pyctr stays as the child's
parent to forward signals (from the moment it exists) and collect the exit
status, outside the scope, so its own memory never counts against the
container's limit.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os
import select

from pyctr_systemd import cgroups, names, rootfs
from pyctr_systemd.errors import ContainerExists, LaunchError, NotRoot, PyctrError, SystemdError
from pyctr_systemd.host import HOST
from pyctr_systemd.init import sync
from pyctr_systemd.limits import format_size, unenforced, unit_properties
from pyctr_systemd.systemd import Systemd
from pyctr_systemd.unit import UnitName, scope_properties

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyctr_systemd.effects import Host, Launched, OomWatcher, Units
    from pyctr_systemd.init.launch import LaunchSpec
    from pyctr_systemd.limits import Property
    from pyctr_systemd.run_config import RunConfig

FORWARDED = (
    _signal.SIGTERM,
    _signal.SIGHUP,
    _signal.SIGINT,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)


class OutOfMemory(PyctrError):
    exit_code = 137  # 128 + SIGKILL, what a shell reports for the payload


def create(
    launch: LaunchSpec,
    name: UnitName,
    description: str,
    properties: list[Property],
    bus: Units,
    host: Host,
    before_go: Callable[[int], None] | None = None,
    cpuset: tuple[str | None, str | None] = (None, None),
) -> tuple[Launched, dict[str, str]]:
    """Make the container up to the exec of its payload, in its unit; return the
    child and its cgroup paths. Whatever fails, nothing is left: no process, no unit.

    The child prepares the rootfs while systemd creates the scope; `before_go`
    (createRuntime hooks) runs once both are done.
    """
    paths: dict[str, str] = {}
    theirs = False

    def place(pid: int) -> None:
        nonlocal theirs
        try:
            bus.start_transient(name.unit, scope_properties(description, name.slice, pid, properties))
        except ContainerExists:
            theirs = True  # that unit is not ours to stop
            raise
        paths.update(host.cgroups_of(pid))
        if not _in_unit(paths, name.unit):
            raise SystemdError(f"systemd did not move the container into {name.unit}")
        host.join(pid, paths, *cpuset)

    try:
        child = host.launch(launch, place, before_go)
    except BaseException as e:
        if isinstance(e, sync.Unreported) and paths and host.out_of_memory(paths):
            e = LaunchError(
                "container setup failed: out of memory before the payload started (a memory limit too small)"
            )
        if not theirs:
            stop_quietly(bus, host, name.unit, cgroups.unit_cgroup(paths) or "")
        raise e from None
    return child, paths


def run(config: RunConfig, bus: Units | None = None, host: Host = HOST) -> int:
    """Run the container to its end; return its exit status as a shell would."""
    if os.geteuid() != 0:
        raise NotRoot("pyctr must be run as root")
    bus = bus or Systemd()
    if not config.launch.rootfs:
        config.launch.rootfs, config.launch.ephemeral = rootfs.default(), True
    unified = host.unified()
    for warning in unenforced(config.limits, unified):
        os.write(2, f"pyctr: warning: {warning}\n".encode())
    name = UnitName(names.scope_unit(config.name), names.SLICE)
    if config.named:  # a generated name is new: no round trip to ask
        bus.refuse_live(names.other_units(name.unit, config.name))
    properties = unit_properties(config.limits, unified)
    with Forwarding() as forwarding:
        child, paths = create(config.launch, name, f"pyctr container {config.name}", properties, bus, host)
        forwarding.to(child.pid)
        watch = host.watch_oom(paths)
        try:
            if config.machine:
                from pyctr_systemd import machined

                machined.register(bus, config.name, child.pid, config.launch.rootfs)
            child.send(sync.START)
            status = wait(child, forwarding.pidfd, watch)
        finally:
            watch.close()
            bus.stop(name.unit)
            try:
                host.remove_groups(cgroups.unit_cgroup(paths) or "")
            except PyctrError as e:  # said, but the payload's exit status stays the answer
                os.write(2, f"pyctr: warning: {e}\n".encode())
    error = child.error()
    if error is not None:
        raise error
    code = exit_code(status)
    if code == 128 + _signal.SIGKILL and watch.seen:
        limit = f" (MemoryMax={format_size(config.limits.memory)})" if config.limits.memory else ""
        raise OutOfMemory(f"container {config.name} killed: out of memory{limit}")
    return code


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: 128+N for a kill by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _in_unit(paths: dict[str, str], unit: str) -> bool:
    path = cgroups.unit_cgroup(paths)
    return path is not None and path.rsplit("/", 1)[-1] == unit


def spawn_into(launch: LaunchSpec, bus: Units, host: Host, unit: str) -> Launched:
    """A process for a running container's unit (exec): moved into the unit
    before it joins the container's cgroup namespace, created up to its exec."""

    def place(pid: int) -> None:
        bus.attach(unit, pid)
        host.join(pid)

    return host.launch(launch, place)


def stop_quietly(bus: Units, host: Host, unit: str, group: str = "") -> None:
    """Stop the unit of a container that failed, and remove the groups pyctr made for it."""
    try:
        bus.stop(unit)
    except PyctrError:
        pass  # the error that brought us here is the one to report
    try:
        host.remove_groups(group)
    except PyctrError:
        pass


class Forwarding:
    """Pass FORWARDED signals on to the container from now on, through a pidfd
    (once the child is reaped, its pid may name another process). Until the
    child exists, they are held and sent on as soon as it does. The payload
    runs in a session of its own, so terminal signals reach only pyctr.
    """

    def __init__(self) -> None:
        self.pidfd = -1
        self._held: list[int] = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Forwarding:
        self._previous = {sig: _signal.signal(sig, self._forward) for sig in FORWARDED}
        return self

    def to(self, pid: int) -> None:
        self.pidfd = os.pidfd_open(pid)
        for sig in self._held:
            self._send(sig)

    def _forward(self, sig: int, _: object) -> None:
        if self.pidfd < 0:
            self._held.append(sig)
        else:
            self._send(sig)

    def _send(self, sig: int) -> None:
        try:
            _signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass  # already gone

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            _signal.signal(sig, handler)
        if self.pidfd >= 0:
            os.close(self.pidfd)


def wait(child: Launched, pidfd: int, watch: OomWatcher | None = None) -> int:
    """Wait for the child's exit, watching for OOM kills meanwhile."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if watch is not None and watch.fd >= 0:
        poller.register(watch.fd, watch.events)
    while True:
        for fd, _ in poller.poll():
            if watch is not None and fd == watch.fd and not watch.check():
                poller.unregister(fd)
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            if watch is not None:
                watch.check()
            return status
