"""pause and resume: the cgroup freezer.

On cgroup v2 systemd freezes a unit itself (FreezeUnit/ThawUnit). On v1
systemd manages no freezer hierarchy and refuses, so pyctr does what runc's
v1 driver does: it puts the unit's processes into a freezer cgroup of their
own, pyctr/UNIT, freezes that, and on resume thaws it, moves them back and
removes it. The freezer state is not a resource limit: systemd never sets it
on v1 and nothing of systemd's is overwritten.
"""

from __future__ import annotations

import os
import time

from pyctr_systemd import cgroups, hierarchies
from pyctr_systemd.errors import PyctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Units

V1_DIR = "pyctr"


def frozen(pid: int) -> bool:
    """Is the process's cgroup frozen (read from its own cgroup files)?"""
    try:
        paths = cgroups.of_pid(pid)
    except FileNotFoundError:
        return False
    if cgroups.is_unified():
        directory = cgroups.unified_dir(paths)
        events = _read(os.path.join(directory, "cgroup.events")) if directory else ""
        return "frozen 1" in events.splitlines()
    directory = cgroups.controller_dir("freezer", paths)
    return directory is not None and _read(os.path.join(directory, "freezer.state")).strip() == "FROZEN"


def _read(path: str) -> str:
    try:
        return cgroups.read(path)
    except OSError:
        return ""


def _freezer_mount() -> str | None:
    for m in cgroups.mounts():
        if m.fstype == "cgroup" and "freezer" in m.controllers():
            return m.mountpoint
    return None


def _v1_root() -> str:
    root = _freezer_mount()
    if root is None:
        raise PyctrError("cannot pause: this system has no freezer cgroup")
    return root


def _v1_group(root: str, unit: str) -> str:
    return os.path.join(root, V1_DIR, unit)


def freeze(bus: Units, unit: str, pid: int) -> None:
    if cgroups.is_unified():
        bus.freeze(unit, True)
        return
    group = _v1_group(_v1_root(), unit)
    os.makedirs(group, exist_ok=True)
    from pyctr_systemd.systemd import SCOPE  # not at the top: `state` reads frozen() alone

    control = bus.unit_property(unit, SCOPE, "ControlGroup")
    _move(cgroups.procs(str(control)) if control else [pid], group)
    _set_state(group, "FROZEN")


def thaw(bus: Units, unit: str, pid: int) -> None:
    if cgroups.is_unified():
        bus.freeze(unit, False)
        return
    root = _v1_root()
    group = _v1_group(root, unit)
    if not os.path.isdir(group):
        return
    _set_state(group, "THAWED")
    # Running again, they may fork meanwhile: move until none is left. A process killed
    # while frozen dies now, and may be gone before it is moved.
    deadline = time.monotonic() + 5
    while (pids := cgroups.read(os.path.join(group, "cgroup.procs")).split()) and time.monotonic() < deadline:
        _move([int(p) for p in pids], root)
    _remove(group, patience=5)


def forget(unit: str) -> None:
    """Remove the freezer group of a container that ended while paused (cgroup v1)."""
    root = None if cgroups.is_unified() else _freezer_mount()
    if root is not None:
        _remove(_v1_group(root, unit), patience=0)


def _move(pids: list[int], group: str) -> None:
    for p in pids:
        try:
            hierarchies.write(os.path.join(group, "cgroup.procs"), str(p))
        except ProcessLookupError:
            pass  # it exited meanwhile


def _remove(group: str, patience: float) -> None:
    try:
        hierarchies.remove_group(group, patience)
    except PyctrError:
        if patience:
            raise
        return  # processes left in it, frozen: better kept than lost
    try:
        os.rmdir(os.path.dirname(group))
    except OSError:
        pass  # another container is paused


def _set_state(group: str, wanted: str) -> None:
    path = os.path.join(group, "freezer.state")
    deadline = time.monotonic() + 10
    while True:
        with open(path, "w") as f:
            f.write(wanted)
        if cgroups.read(path).strip() == wanted:
            return
        if time.monotonic() > deadline:
            raise PyctrError(f"the freezer did not reach {wanted} in 10s")
        time.sleep(0.001)
