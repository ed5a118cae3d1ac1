"""Recording fakes of systemd and the host (pyctr_systemd.effects), for unit tests of the
lifecycle's orchestration. The container's "first process" is a real process of the test's
own (a sleep, or a shell that exits as told), so signals, pidfds and waits act on
something real and nothing of the machine's is touched; its cgroup is whatever the fake says."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from pyctr_systemd.errors import ContainerExists, LaunchError
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.limits import Property

Call = tuple[object, ...]


class FakeUnits:
    """systemd: records every call; units it was asked to start are "live" until stopped."""

    def __init__(self, *, invocation: str = "feed", fail_start: Exception | None = None) -> None:
        self.calls: list[Call] = []
        self.started: dict[str, list[Property]] = {}
        self.properties: dict[tuple[str, str], object] = {}
        self.listed: list[tuple[str, str, str]] = []
        self.states: dict[str, str] = {}
        self.fail_reload: Exception | None = None
        self._invocation, self._fail_start = invocation, fail_start

    def named(self, method: str) -> list[Call]:
        return [c for c in self.calls if c[0] == method]

    def start_transient(self, unit: str, properties: list[Property]) -> None:
        self.calls.append(("start_transient", unit))
        if self._fail_start is not None:
            raise self._fail_start
        self.started[unit] = properties

    def stop(self, unit: str, timeout: float = 30.0, unload: bool = True) -> None:
        self.calls.append(("stop", unit))
        self.started.pop(unit, None)

    def kill(self, unit: str, who: str, signal: int) -> None:
        self.calls.append(("kill", unit, who, signal))

    def attach(self, unit: str, pid: int) -> None:
        self.calls.append(("attach", unit, pid))

    def freeze(self, unit: str, frozen: bool) -> None:
        self.calls.append(("freeze", unit, frozen))

    def set_properties(self, unit: str, properties: list[Property]) -> None:
        self.calls.append(("set_properties", unit, properties))

    def unit_property(self, unit: str, interface: str, prop: str) -> object | None:
        self.calls.append(("unit_property", unit, prop))
        return self.properties.get((unit, prop))

    def invocation(self, unit: str) -> str:
        self.calls.append(("invocation", unit))
        return self._invocation if unit in self.started else ""

    def list_units(self, patterns: list[str]) -> list[tuple[str, str, str]]:
        self.calls.append(("list_units", *patterns))
        return self.listed

    def refuse_live(self, units: list[str]) -> None:
        self.calls.append(("refuse_live", *units))
        live = [u for u in units if u in self.started]
        if live:
            raise ContainerExists(f"container name is already in use: {live[0]} is active")

    def unit_path(self, unit: str) -> str | None:
        self.calls.append(("unit_path", unit))
        return f"/org/freedesktop/systemd1/unit/{unit}" if unit in self.started else None

    def active_state(self, unit: str) -> str | None:
        self.calls.append(("active_state", unit))
        return self.states.get(unit, "active" if unit in self.started else None)

    def reset_failed(self, unit: str) -> None:
        self.calls.append(("reset_failed", unit))

    def reload(self) -> None:
        self.calls.append(("reload",))
        if self.fail_reload is not None:
            raise self.fail_reload

    def call(
        self, destination: str, path: str, interface: str, method: str, signature: str = "",
        *args: object, auto_start: bool = True,
    ) -> list[object]:  # fmt: skip
        self.calls.append(("call", destination, method, *args))
        return []


def spawn(*argv: str) -> int:
    """A real child process of the test, standing in for a container's first process."""
    return os.posix_spawnp(argv[0], list(argv), dict(os.environ))


class FakeChild:
    """A launched first process: a real `argv` process, with the launcher's protocol recorded."""

    def __init__(self, *argv: str, error: LaunchError | None = None) -> None:
        self.pid = spawn(*(argv or ("sleep", "60")))
        self.sent: list[bytes] = []
        self.aborted = self.closed = False
        self._error = error

    def send(self, message: bytes) -> None:
        self.sent.append(message)

    def abort(self) -> LaunchError | None:
        self.aborted = True
        self.end()
        return self._error

    def close(self) -> None:
        self.closed = True

    def error(self, head: bytes = b"") -> LaunchError | None:
        return self._error

    def end(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass  # ended and reaped already


class FakeWatch:
    def __init__(self, seen: bool = False) -> None:
        self.seen, self.fd, self.events = seen, -1, 0
        self.closed = False

    def check(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class FakeHost:
    """The host: a v1 (or v2) layout where every placed process lands in the unit it was
    started in; records what is joined, removed and launched."""

    def __init__(
        self, *, unified: bool = False, child: FakeChild | None = None, fail: BaseException | None = None,
        oom: bool = False, watch: FakeWatch | None = None,
    ) -> None:  # fmt: skip
        self.calls: list[Call] = []
        self.launched: list[LaunchSpec] = []
        self.child = child
        self.group = ""
        self.watch = watch or FakeWatch()
        self._unified, self._fail, self._oom = unified, fail, oom

    def unified(self) -> bool:
        return self._unified

    def launch(
        self, spec: LaunchSpec, place: Callable[[int], None], before_go: Callable[[int], None] | None = None
    ) -> FakeChild:
        self.launched.append(spec)
        child = self.child or FakeChild()
        self.child = child
        try:
            place(child.pid)
            if self._fail is not None:
                raise self._fail
            if before_go is not None:
                before_go(child.pid)
        except BaseException:
            child.abort()
            raise
        return child

    def cgroups_of(self, pid: int) -> dict[str, str]:
        return {"name=systemd": self.group, "": self.group}

    def join(self, pid: int, paths: dict[str, str] | None = None, cpus: str | None = None,
             mems: str | None = None) -> None:  # fmt: skip
        self.calls.append(("join", pid, cpus, mems))

    def remove_groups(self, group: str) -> None:
        self.calls.append(("remove_groups", group))

    def remove_orphans(self, gone: Callable[[str], bool], settled: float) -> list[str]:
        self.calls.append(("remove_orphans", settled))
        return []

    def spare_launcher(self, spec: LaunchSpec) -> None:
        self.calls.append(("spare_launcher",))

    def out_of_memory(self, paths: dict[str, str]) -> bool:
        return self._oom

    def watch_oom(self, paths: dict[str, str]) -> FakeWatch:
        return self.watch
