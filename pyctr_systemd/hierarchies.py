"""cgroup v1 hierarchies systemd leaves alone: the container joins them as runc's systemd
driver does.

On a legacy or hybrid layout systemd places a unit only in the hierarchies of the controllers
it manages (cpu, memory, pids, devices, blkio, and cpuacct where it shares cpu's hierarchy).
In the others (cpuset, a cpuacct mounted on its own, net_cls, perf_event...) a container would
stay in the root group, and whatever reads a container's figures through /proc/PID/cgroup
(containerd's shim for `docker stats`, podman, conmon) would report the whole host's. So each
container process joins a group at its unit's own path in each of those hierarchies; cpuset.cpus
and cpuset.mems are set there (systemd sets AllowedCPUs only on cgroup v2, so nothing of
systemd's is overwritten), and the groups go when the container is deleted. The freezer
hierarchy is pyctr_systemd.freezer's. On cgroup v2 systemd manages every controller: nothing
here applies.
"""

from __future__ import annotations

import os
import time

from pyctr_systemd import cgroups
from pyctr_systemd.errors import InvalidArgument, PyctrError

SYSTEMD_MANAGED = frozenset({"cpu", "memory", "pids", "devices", "blkio"})


def unmanaged(found: list[cgroups.CgroupMount]) -> list[cgroups.CgroupMount]:
    """The v1 hierarchies no container unit of systemd's is ever placed in (but the freezer)."""
    return [
        m
        for m in found
        if m.fstype == "cgroup" and m.controllers() and not m.controllers() & (SYSTEMD_MANAGED | {"freezer"})
    ]


def join(pid: int, cpus: str | None = None, mems: str | None = None) -> None:
    """Put a process of a container, already in its unit, into the unit's groups of the
    hierarchies systemd leaves alone; cpus and mems set the cpuset there."""
    if cgroups.is_unified():
        return
    group = cgroups.unit_cgroup(cgroups.of_pid(pid))
    if not group or group == "/":
        return
    for m in unmanaged(cgroups.mounts()):
        directory = _make(m, group)
        if "cpuset" in m.controllers() and (cpus or mems):
            set_cpuset(directory, cpus, mems)
        try:
            _write(os.path.join(directory, "cgroup.procs"), str(pid))
        except ProcessLookupError:
            return  # it ended meanwhile


def _make(m: cgroups.CgroupMount, group: str) -> str:
    """The group's directory, each new level of a cpuset group given its parent's CPUs and
    memory nodes: a task may not join an empty cpuset."""
    directory = m.mountpoint
    for part in m.path_of(group)[len(m.mountpoint) :].strip("/").split("/"):
        parent, directory = directory, os.path.join(directory, part)
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue
        if "cpuset" in m.controllers():
            for name in ("cpuset.cpus", "cpuset.mems"):
                _write(os.path.join(directory, name), cgroups.read(os.path.join(parent, name)).strip())
    return directory


def set_cpuset(directory: str, cpus: str | None, mems: str | None) -> None:
    for name, value in (("cpuset.cpus", cpus), ("cpuset.mems", mems)):
        if value:
            try:
                _write(os.path.join(directory, name), value)
            except OSError as e:
                allowed = cgroups.read(os.path.join(os.path.dirname(directory), name)).strip()
                raise InvalidArgument(
                    f"cannot set {name} to {value!r} (this host has {allowed}): {e.strerror}"
                ) from None


def update_cpuset(group: str, cpus: str | None, mems: str | None) -> None:
    """`update --cpuset-cpus/--cpuset-mems` of a running container on cgroup v1."""
    for m in unmanaged(cgroups.mounts()):
        if "cpuset" in m.controllers():
            set_cpuset(m.path_of(group), cpus, mems)


def remove(group: str) -> None:
    """The container's groups, once its processes are gone, and the slices' above them that
    are left empty (only pyctr makes groups in these hierarchies)."""
    if cgroups.is_unified() or not group or group == "/":
        return
    for m in unmanaged(cgroups.mounts()):
        directory = m.path_of(group)
        if remove_group(directory, patience=2):
            parent = os.path.dirname(directory)
            while parent != m.mountpoint and _rmdir_if_empty(parent):
                parent = os.path.dirname(parent)


def remove_group(directory: str, patience: float) -> bool:
    """rmdir a group whose processes are ending; False if it was not there."""
    deadline = time.monotonic() + patience
    while True:
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return False
        except OSError as e:  # EBUSY while a killed process is still on its way out
            if time.monotonic() >= deadline:
                raise PyctrError(f"cannot remove cgroup {directory}: {e.strerror}") from None
            time.sleep(0.005)


def _rmdir_if_empty(directory: str) -> bool:
    try:
        os.rmdir(directory)
        return True
    except OSError:
        return False  # another container's group is below it


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
