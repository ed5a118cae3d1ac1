"""cgroup v1 hierarchies systemd leaves alone: the container joins them as runc's systemd
driver does.

On a legacy or hybrid layout systemd places a unit only in the hierarchies of the controllers
it manages (cpu, memory, pids, devices, blkio, and cpuacct where it shares cpu's hierarchy).
In the others (cpuset, a cpuacct mounted on its own, net_cls, perf_event...) a container would
stay in the root group, and whatever reads a container's figures through /proc/PID/cgroup
(containerd's shim for `docker stats`, podman, conmon) would report the whole host's. So each
container process joins a group at its unit's own path in each of those hierarchies; cpuset.cpus
and cpuset.mems are set there (systemd sets AllowedCPUs only on cgroup v2, so nothing of
systemd's is overwritten), and the groups go when the container is deleted (the slices above
them stay, as systemd's own do). The freezer hierarchy is pyctr_systemd.freezer's. On cgroup
v2 systemd manages every controller: nothing here applies.
"""

from __future__ import annotations

import os
import time

from pyctr_systemd import cgroups
from pyctr_systemd.errors import InvalidArgument, PyctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

SYSTEMD_MANAGED = frozenset({"cpu", "memory", "pids", "devices", "blkio"})


def unmanaged(found: list[cgroups.CgroupMount]) -> list[cgroups.CgroupMount]:
    """The v1 hierarchies no container unit of systemd's is ever placed in (but the freezer)."""
    return [
        m
        for m in found
        if m.fstype == "cgroup"
        and m.mountpoint.startswith(cgroups.CGROUP_ROOT + "/")
        and m.controllers()
        and not m.controllers() & (SYSTEMD_MANAGED | {"freezer"})
    ]


def join(
    pid: int, paths: dict[str, str] | None = None, cpus: str | None = None, mems: str | None = None
) -> None:
    """Put a process of a container, already in its unit, into the unit's groups of the
    hierarchies systemd leaves alone; cpus and mems set the cpuset there (else the host's).
    paths: the process's cgroups (cgroups.of_pid), if the caller has read them already."""
    if cgroups.is_unified():
        return
    group = cgroups.unit_cgroup(paths if paths is not None else cgroups.of_pid(pid))
    if not group or group == "/":
        return
    for m, directory in _groups(group):
        _make(m, directory)
        if "cpuset" in m.controllers():
            set_cpuset(
                directory,
                cpus or _parent(directory, "cpuset.cpus"),
                mems or _parent(directory, "cpuset.mems"),
            )
        try:
            write(os.path.join(directory, "cgroup.procs"), str(pid))
        except ProcessLookupError:
            return  # it ended meanwhile


def _groups(group: str) -> list[tuple[cgroups.CgroupMount, str]]:
    """(hierarchy, directory) of the unit's group in each hierarchy systemd leaves alone."""
    found = []
    for m in unmanaged(cgroups.mounts()):
        try:
            found.append((m, m.path_of(group)))
        except ValueError:
            continue  # a mount of another part of the hierarchy
    return found


def _make(m: cgroups.CgroupMount, directory: str) -> None:
    """The group's directory and its parents; a parent cpuset level with no CPUs or memory
    nodes yet gets its own parent's, as a task may not join an empty cpuset (join sets the
    group's own). Slices stay when the container goes, as systemd's do: other containers may
    be entering them."""
    path = m.mountpoint
    for part in directory[len(m.mountpoint) :].strip("/").split("/"):
        path = os.path.join(path, part)
        os.makedirs(path, exist_ok=True)
        if path != directory and "cpuset" in m.controllers():
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not cgroups.read(os.path.join(path, name)).strip():
                    write(os.path.join(path, name), _parent(path, name))


def _parent(directory: str, name: str) -> str:
    return cgroups.read(os.path.join(os.path.dirname(directory), name)).strip()


def set_cpuset(directory: str, cpus: str | None, mems: str | None) -> None:
    for name, value in (("cpuset.cpus", cpus), ("cpuset.mems", mems)):
        if value:
            try:
                write(os.path.join(directory, name), value)
            except OSError as e:
                raise InvalidArgument(
                    f"cannot set {name} to {value!r} (this host has {_parent(directory, name)}): {e.strerror}"
                ) from None


def update_cpuset(group: str, cpus: str | None, mems: str | None) -> None:
    """`update --cpuset-cpus/--cpuset-mems` of a running container on cgroup v1."""
    if not group:
        raise PyctrError("this container was created by an older pyctr: its cpuset cannot be changed")
    for m, directory in _groups(group):
        if "cpuset" in m.controllers():
            set_cpuset(directory, cpus, mems)


def remove(group: str) -> None:
    """The container's groups, and any its payload made below them, once its processes are
    gone."""
    if cgroups.is_unified() or not group or group == "/":
        return
    for _, directory in _groups(group):
        remove_tree(directory)


def remove_tree(directory: str) -> None:
    """A group and the groups its payload made below it, once their processes are gone."""
    for below, dirs, _ in os.walk(directory, topdown=False):
        for name in dirs:
            remove_group(os.path.join(below, name), patience=2)
    remove_group(directory, patience=2)


def remove_orphans(gone: Callable[[str], bool], settled: float = 2.0) -> list[str]:
    """Empty groups of scopes that are `gone` (by name): a pyctr killed before it removed them.
    A group newer than `settled` seconds may be a container's on its way in, its unit not yet
    loaded when the caller asked; one with a process or a group below it is never removed."""
    removed = []
    now = time.time()
    for m in unmanaged(cgroups.mounts()):
        for below, dirs, _ in os.walk(m.mountpoint, topdown=False):
            for name in dirs:
                path = os.path.join(below, name)
                if not name.endswith(".scope") or not gone(name):
                    continue
                try:
                    if now - os.stat(path).st_mtime < settled:
                        continue
                    os.rmdir(path)  # EBUSY or ENOTEMPTY: someone's still
                except OSError:
                    continue
                removed.append(path)
    return removed


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


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
