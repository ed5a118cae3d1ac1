"""Where a process's cgroups are, on whatever layout this machine mounted.

pyctr never writes a cgroup limit; systemd does. It only needs to find cgroup files
to report from (OOM kills, current usage), and the sandbox needs to mirror the
host's layout. Both legacy/hybrid v1 and unified v2 exist in the wild, so nothing
here assumes one: paths come from /proc/PID/cgroup and /proc/self/mountinfo.
"""

from __future__ import annotations

import errno
import os

CGROUP_ROOT = "/sys/fs/cgroup"


class CgroupMount:
    """One mounted cgroup hierarchy, as listed in mountinfo."""

    __slots__ = ("mountpoint", "root", "fstype", "options")

    def __init__(self, mountpoint: str, root: str, fstype: str, options: tuple[str, ...]) -> None:
        self.mountpoint = mountpoint
        self.root = root  # the cgroup shown at mountpoint, relative to the hierarchy
        self.fstype = fstype  # "cgroup" (v1) or "cgroup2"
        self.options = options  # super options, e.g. ("rw", "memory") or ("rw", "name=systemd")

    def __repr__(self) -> str:
        return f"CgroupMount({self.mountpoint!r}, {self.root!r}, {self.fstype!r}, {self.options!r})"

    @property
    def key(self) -> str:
        """The hierarchy's name as /proc/PID/cgroup spells it ("" for cgroup2)."""
        if self.fstype == "cgroup2":
            return ""
        return ",".join(o for o in self.options if o not in _V1_FLAGS)

    def controllers(self) -> frozenset[str]:
        if self.fstype == "cgroup2":
            return frozenset(read(os.path.join(self.mountpoint, "cgroup.controllers")).split())
        return frozenset(o for o in self.options if o not in _V1_FLAGS and "=" not in o)

    def path_of(self, cgroup: str) -> str:
        """Directory of `cgroup` (as /proc/PID/cgroup shows it) below this mount."""
        rel = os.path.relpath(cgroup, self.root) if cgroup != self.root else "."
        if rel.startswith(".."):
            raise ValueError(f"cgroup {cgroup} is not below {self.mountpoint} ({self.root})")
        return os.path.normpath(os.path.join(self.mountpoint, rel))


# v1 super options that are flags rather than the hierarchy's name.
_V1_FLAGS = frozenset({"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode"})


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    if "\\" not in field:
        return field
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup mounts in a mountinfo table (proc(5)), in order."""
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            CgroupMount(
                mountpoint=_unescape(fields[4]),
                root=_unescape(fields[3]),
                fstype=rfields[0],
                options=tuple(rfields[2].split(",")),
            )
        )
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map hierarchy key ("memory", "cpu,cpuacct", "name=systemd", "" for v2) to path."""
    paths = {}
    for line in text.splitlines():
        _, key, path = line.split(":", 2)
        paths[key] = path
    return paths


def mounts() -> list[CgroupMount]:
    return parse_mountinfo(read("/proc/self/mountinfo"))


def of_pid(pid: int | str) -> dict[str, str]:
    return parse_proc_cgroup(read(f"/proc/{pid}/cgroup"))


def is_unified() -> bool:
    """True on a pure cgroup v2 system, where systemd runs in unified mode.

    systemd decides this by the filesystem type at /sys/fs/cgroup; only cgroup2
    has cgroup.controllers at its root, so one stat tells the same.
    """
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def controller_dir(controller: str, paths: dict[str, str]) -> str | None:
    """The directory of a process's cgroup (`paths`, from of_pid) for `controller`.

    None if the controller is not mounted.
    """
    for m in mounts():
        if m.key in paths and controller in m.controllers():
            return m.path_of(paths[m.key])
    return None


def unified_dir(paths: dict[str, str]) -> str | None:
    """The directory of a process's cgroup on the cgroup2 hierarchy, if one is mounted."""
    for m in mounts():
        if m.fstype == "cgroup2" and "" in paths:
            return m.path_of(paths[""])
    return None


def unit_cgroup(paths: dict[str, str]) -> str | None:
    """The cgroup systemd tracks a process's unit by, from its `paths` (of_pid)."""
    # Legacy and hybrid track units on name=systemd; the kernel still prints a
    # "0::/" line there, so only fall back to it on a unified system.
    return paths.get("name=systemd") or paths.get("")


def procs(control_group: str) -> list[int]:
    """The processes of a unit's cgroup (systemd's ControlGroup property), from
    the hierarchy systemd tracks units by."""
    for m in mounts():
        if m.key in ("name=systemd", "") and m.mountpoint.startswith(CGROUP_ROOT):
            try:
                return [int(p) for p in read(os.path.join(m.path_of(control_group), "cgroup.procs")).split()]
            except (FileNotFoundError, ValueError):
                continue
            except OSError as e:  # ENODEV: systemd removed the group while it was read
                if e.errno != errno.ENODEV:
                    raise
    return []
