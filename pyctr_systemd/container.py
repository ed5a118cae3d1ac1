"""A container's life in the foreground: unit, launch, wait, report.

The order matters for leaving nothing behind: the bus is reached before any
process exists; the child is forked and prepares the container's root while
systemd creates the scope with the child in it; only once the child is in the
unit, under its limits, may it exec the payload. pyctr stays as the child's
parent to forward signals and collect the exit status, outside the scope, so its
own memory never counts against the container's limit.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os
import select

from pyctr_systemd import cgroups, launcher, names, rootfs
from pyctr_systemd.errors import ContainerExists, NotRoot, PyctrError, SystemdError
from pyctr_systemd.limits import Limits, Property, format_size, unit_properties
from pyctr_systemd.oom import OomWatch
from pyctr_systemd.systemd import Systemd

STOP_TIMEOUT_USEC = 10_000_000  # docker's default grace before SIGKILL
_FORWARDED = (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGUSR1, _signal.SIGUSR2)
_TERMINAL = (_signal.SIGINT, _signal.SIGQUIT)


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
    config.launch.rootfs = config.launch.rootfs or rootfs.default()
    unit = names.scope_unit(config.name)
    unified = cgroups.is_unified()
    child = launcher.spawn(config.launch)
    try:
        bus.start_scope(unit, scope_properties(config, child.pid, unified))
        if not _in_unit(child.pid, unit):
            raise SystemdError(f"systemd did not move the container into {unit}")
        watch = OomWatch(child.pid)
    except BaseException as e:
        error = child.abort()  # a failed setup explains a failed start best
        if not isinstance(e, ContainerExists):  # that unit is not ours to stop
            _stop_quietly(bus, unit)
        if error is not None:
            raise error from None
        raise
    try:
        child.go()
        status = _wait(child, watch)
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


def _in_unit(pid: int, unit: str) -> bool:
    path = cgroups.unit_cgroup(pid)
    return path is not None and path.rsplit("/", 1)[-1] == unit


def _stop_quietly(bus: Systemd, unit: str) -> None:
    try:
        bus.stop(unit)
    except PyctrError:
        pass  # the error that brought us here is the one to report


def _shares_terminal() -> bool:
    """True if we and the payload get the terminal's SIGINT/SIGQUIT anyway."""
    try:
        return os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _wait(child: launcher.Child, watch: OomWatch) -> int:
    """Wait for the child's exit, forwarding signals and watching for OOM."""
    terminal = _shares_terminal()
    forwarded = _FORWARDED if terminal else _FORWARDED + _TERMINAL
    previous = {s: _signal.signal(s, lambda n, _: os.kill(child.pid, n)) for s in forwarded}
    if terminal:
        previous.update({s: _signal.signal(s, _signal.SIG_IGN) for s in _TERMINAL})
    pidfd = os.pidfd_open(child.pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if watch.fd >= 0:
        poller.register(watch.fd, watch.events)
    try:
        while True:
            for fd, _ in poller.poll():
                if fd == watch.fd and not watch.check():
                    poller.unregister(fd)
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                watch.check()
                return status
    finally:
        os.close(pidfd)
        for s, handler in previous.items():
            _signal.signal(s, handler)
