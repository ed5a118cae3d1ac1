"""The effects the lifecycle orchestrators have on the world, as interfaces.

`Units` is systemd as pyctr uses it (pyctr_systemd.systemd.Systemd is the real
one); `Host` is the running machine: its cgroup layout and the launcher of a
container's first process (pyctr_systemd.host.Host); `Launched` is that first
process, created up to the exec of its payload (pyctr_systemd.init.sync.Child).
Orchestrators take them as arguments, so unit tests drive create, start,
hand-over, exec and the OOM report with recording fakes (tests/unit/fakes.py)
while the integration tests prove the real ones. Imported only for type
checking: the start path pays nothing for these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pyctr_systemd.errors import LaunchError
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.limits import Property


class Units(Protocol):
    def start_transient(self, unit: str, properties: list[Property]) -> None: ...

    def stop(self, unit: str, timeout: float = ..., unload: bool = ...) -> None: ...

    def kill(self, unit: str, who: str, signal: int) -> None: ...

    def attach(self, unit: str, pid: int) -> None: ...

    def freeze(self, unit: str, frozen: bool) -> None: ...

    def set_properties(self, unit: str, properties: list[Property]) -> None: ...

    def unit_property(self, unit: str, interface: str, prop: str) -> object | None: ...

    def invocation(self, unit: str) -> str: ...

    def list_units(self, patterns: list[str]) -> list[tuple[str, str, str]]: ...

    def refuse_live(self, units: list[str]) -> None: ...

    def unit_path(self, unit: str) -> str | None: ...

    def active_state(self, unit: str) -> str | None: ...

    def reset_failed(self, unit: str) -> None: ...

    def reload(self) -> None: ...

    def call(
        self, destination: str, path: str, interface: str, method: str, signature: str = "",
        *args: object, auto_start: bool = True,
    ) -> list[object]: ...  # fmt: skip


class Launched(Protocol):
    pid: int

    def send(self, message: bytes) -> None: ...

    def abort(self) -> LaunchError | None: ...

    def close(self) -> None: ...

    def error(self, head: bytes = b"") -> LaunchError | None: ...


class OomWatcher(Protocol):
    seen: bool
    fd: int
    events: int

    def check(self) -> bool: ...

    def close(self) -> None: ...


class Host(Protocol):
    def unified(self) -> bool:
        """Is this a pure cgroup v2 system?"""

    def launch(
        self, spec: LaunchSpec, place: Callable[[int], None], before_go: Callable[[int], None] | None = None
    ) -> Launched:
        """A container's first process, placed by `place` and created up to its payload's exec."""

    def cgroups_of(self, pid: int) -> dict[str, str]:
        """The process's cgroup in each hierarchy (/proc/PID/cgroup)."""

    def join(self, pid: int, paths: dict[str, str] | None = None, cpus: str | None = None,
             mems: str | None = None) -> None:  # fmt: skip
        """Put the process into the v1 hierarchies systemd does not manage."""

    def remove_groups(self, group: str) -> None:
        """Remove the groups of those hierarchies that pyctr made for a unit's cgroup."""

    def remove_orphans(self, gone: Callable[[str], bool], settled: float) -> list[str]:
        """Remove the empty groups of units that are `gone` (by name), left for `settled` seconds."""

    def spare_launcher(self, spec: LaunchSpec) -> None:
        """Shield this process (a service's launcher) from the OOM killer until it exits;
        the container gets its OOM score."""

    def out_of_memory(self, paths: dict[str, str]) -> bool:
        """Has the memory cgroup of these paths seen an OOM kill?"""

    def watch_oom(self, paths: dict[str, str]) -> OomWatcher:
        """A watch on that memory cgroup, for the parent's poll loop."""
