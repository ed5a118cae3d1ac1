"""A container's life in the foreground: unit, launch, wait, report.

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

from pyctr_systemd import cgroups, launcher, names, rootfs
from pyctr_systemd.errors import ContainerExists, NotRoot, PyctrError, SystemdError
from pyctr_systemd.limits import Limits, Property, format_size, unenforced, unit_properties
from pyctr_systemd.oom import OomWatch
from pyctr_systemd.systemd import Systemd

STOP_TIMEOUT_USEC = 10_000_000  # docker's default grace before SIGKILL
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


class RunConfig:
    __slots__ = ("name", "launch", "limits")

    def __init__(self, name: str, launch: launcher.LaunchSpec, limits: Limits) -> None:
        self.name, self.launch, self.limits = name, launch, limits


def scope_properties(config: RunConfig, pid: int, unified: bool) -> list[Property]:
    return [
        ("Description", "s", f"pyctr container {config.name}"),
        ("Slice", "s", names.SLICE),
        ("PIDs", "au", [pid]),
        # Collect the unit even when it failed (an OOM kill fails it on v2).
        ("CollectMode", "s", "inactive-or-failed"),
        # Only the pseudo devices the launcher creates (null, zero, full,
        # random, urandom, tty, ptmx and pts); a mknod'ed disk stays unusable.
        ("DevicePolicy", "s", "closed"),
        ("TimeoutStopUSec", "t", STOP_TIMEOUT_USEC),
        *unit_properties(config.limits, unified),
    ]


def run(config: RunConfig) -> int:
    """Run the container to its end; return its exit status as a shell would."""
    if os.geteuid() != 0:
        raise NotRoot("pyctr must be run as root")
    bus = Systemd()
    if not config.launch.rootfs:
        config.launch.rootfs, config.launch.ephemeral = rootfs.default(), True
    unit = names.scope_unit(config.name)
    unified = cgroups.is_unified()
    for warning in unenforced(config.limits, unified):
        os.write(2, f"pyctr: warning: {warning}\n".encode())
    child = launcher.spawn(config.launch)
    pidfd = os.pidfd_open(child.pid)
    previous = _forward_signals(pidfd)
    try:
        return _run(config, bus, unit, unified, child, pidfd)
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)
        os.close(pidfd)


def _run(config: RunConfig, bus: Systemd, unit: str, unified: bool, child: launcher.Child, pidfd: int) -> int:
    try:
        bus.start_scope(unit, scope_properties(config, child.pid, unified))
        paths = cgroups.of_pid(child.pid)
        if not _in_unit(paths, unit):
            raise SystemdError(f"systemd did not move the container into {unit}")
        watch = OomWatch(paths)
    except BaseException as e:
        error = child.abort()  # a failed setup explains a failed start best
        if not isinstance(e, ContainerExists):  # that unit is not ours to stop
            _stop_quietly(bus, unit)
        if error is not None:
            raise error from None
        raise
    try:
        child.go()
        status = _wait(child, pidfd, watch)
    finally:
        watch.close()
        bus.stop(unit)
    error = child.error()
    if error is not None:
        raise error
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    if code == 128 + _signal.SIGKILL and watch.seen:
        limit = f" (MemoryMax={format_size(config.limits.memory)})" if config.limits.memory else ""
        raise OutOfMemory(f"container {config.name} killed: out of memory{limit}")
    return code


def _in_unit(paths: dict[str, str], unit: str) -> bool:
    path = cgroups.unit_cgroup(paths)
    return path is not None and path.rsplit("/", 1)[-1] == unit


def _stop_quietly(bus: Systemd, unit: str) -> None:
    try:
        bus.stop(unit)
    except PyctrError:
        pass  # the error that brought us here is the one to report


def _forward_signals(pidfd: int) -> dict[int, object]:
    """Pass these signals on to the container from now on; return the old handlers.

    Through the pidfd: once the child is reaped, its pid may name another process.
    The payload runs in a session of its own, so terminal signals reach only us.
    """

    def forward(sig: int, _: object) -> None:
        try:
            _signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass  # already gone

    return {sig: _signal.signal(sig, forward) for sig in FORWARDED}


def _wait(child: launcher.Child, pidfd: int, watch: OomWatch) -> int:
    """Wait for the child's exit, watching for OOM kills meanwhile."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if watch.fd >= 0:
        poller.register(watch.fd, watch.events)
    while True:
        for fd, _ in poller.poll():
            if fd == watch.fd and not watch.check():
                poller.unregister(fd)
        pid, status = os.waitpid(child.pid, os.WNOHANG)
        if pid:
            watch.check()
            return status
