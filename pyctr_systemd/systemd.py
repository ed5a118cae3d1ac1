"""The container's unit, over the system bus (org.freedesktop.systemd1(5)).

This is the one module that talks D-Bus. It uses dbus-python's C core,
_dbus_bindings, directly: `import dbus` costs ~16 ms (mostly its logging import)
on every container start, and dbus.lowlevel only re-exports these classes.

Waiting for jobs: dbus-python delivers signals only through a GLib main loop,
which we do not have, so instead of subscribing to JobRemoved we poll the job
object, which systemd removes when the job finishes. Calls go through
send_message_with_reply so errors come back as messages, not as
dbus.exceptions.DBusException (whose import pulls in all of `dbus`).
"""

from __future__ import annotations

import os
import time

import _dbus_bindings as dbus

from pyctr_systemd.errors import ContainerExists, SystemdError
from pyctr_systemd.limits import Property

SYSTEMD = "org.freedesktop.systemd1"
ROOT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SCOPE = "org.freedesktop.systemd1.Scope"
SERVICE = "org.freedesktop.systemd1.Service"
JOB = "org.freedesktop.systemd1.Job"
PROPERTIES = "org.freedesktop.DBus.Properties"
CALL_TIMEOUT = 25.0
JOB_TIMEOUT = 30.0
BUS_WAIT = 15.0
POLL_INTERVAL = 0.0005
_ACTIVE = ("active", "activating", "deactivating", "reloading")
_DISCONNECTED = "org.freedesktop.DBus.Error.Disconnected"
_NOT_THERE = ("org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.systemd1.NoSuchUnit")
_NO_SYSTEMD = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner")


class BusError(SystemdError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


_BASIC = {
    "t": dbus.UInt64,
    "x": dbus.Int64,
    "u": dbus.UInt32,
    "i": dbus.Int32,
    "q": dbus.UInt16,
    "n": dbus.Int16,
    "y": dbus.Byte,
    "b": dbus.Boolean,
    "s": dbus.String,
    "d": dbus.Double,
}


def split_signature(signature: str) -> list[str]:
    """The complete types of a D-Bus signature in order: "sasb" -> ["s", "as", "b"]."""
    types, i = [], 0
    while i < len(signature):
        j = i
        while signature[j] == "a":
            j += 1
        if signature[j] == "(":
            depth = 0
            for k in range(j, len(signature)):
                depth += {"(": 1, ")": -1}.get(signature[k], 0)
                if depth == 0:
                    j = k
                    break
        types.append(signature[i : j + 1])
        i = j + 1
    return types


def _variant(signature: str, value: object) -> object:
    """A value typed exactly as `signature` says: systemd rejects, say, an int32 for a uint64."""
    if signature in _BASIC:
        return _BASIC[signature](value)
    if signature == "ay":
        return dbus.ByteArray(bytes(value))  # type: ignore[call-overload]
    if signature.startswith("(") and signature.endswith(")"):
        inner = split_signature(signature[1:-1])
        fields: tuple[object, ...] = tuple(value)  # type: ignore[arg-type]
        return dbus.Struct(
            [_variant(s, v) for s, v in zip(inner, fields, strict=True)], signature=signature[1:-1]
        )
    if signature.startswith("a"):
        items: list[object] = list(value)  # type: ignore[call-overload]
        return dbus.Array([_variant(signature[1:], v) for v in items], signature=signature[1:])
    raise ValueError(f"no D-Bus conversion for signature {signature!r}")


def _connect() -> dbus.Connection:
    try:
        return dbus.Connection._new_for_bus(dbus.BUS_SYSTEM)
    except Exception as e:  # dbus.exceptions.DBusException, without importing dbus
        message = e.get_dbus_message() if hasattr(e, "get_dbus_message") else str(e)
        raise SystemdError(f"cannot connect to the system bus: {message}") from None


# Where systemd writes a transient unit; it loads the unit from there.
TRANSIENT_DIR = "/run/systemd/transient"
_FULL = 64 << 10  # less free than this, and systemd cannot write a unit's settings


def _why(e: BusError) -> str:
    """systemd's reason, or the cause it does not name: a transient unit it could not write
    to a full /run does not load, and systemd says only that it is not found."""
    if e.name not in _NOT_THERE:
        return str(e)
    try:
        fs = os.statvfs(TRANSIENT_DIR)
    except OSError:
        return str(e)
    free = fs.f_bavail * fs.f_frsize
    return f"{TRANSIENT_DIR} is full ({free // 1024} KiB free)" if free < _FULL else str(e)


class Systemd:
    """One connection to the system bus, for the life of one pyctr command."""

    def __init__(self) -> None:
        self._bus = _connect()
        self._wait_until = 0.0  # for systemd to come onto the bus, once per command

    def _reconnect(self) -> None:
        """A new connection after dbus restarted under a long command (a foreground run):
        the old one is gone, and the bus may take a moment to listen again. A call lost
        with the old connection is sent again: pyctr's calls either do the same the second
        time (stop, get, kill) or fail as they would have (a unit already started exists)."""
        deadline = time.monotonic() + BUS_WAIT
        while True:
            try:
                self._bus = _connect()
                return
            except SystemdError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _call(
        self, path: str, interface: str, method: str, signature: str = "", *args: object
    ) -> list[object]:
        # systemd is PID 1: if it is not on the bus, nothing is to start.
        return self.call(SYSTEMD, path, interface, method, signature, *args, auto_start=False)

    def call(
        self,
        destination: str,
        path: str,
        interface: str,
        method: str,
        signature: str = "",
        *args: object,
        auto_start: bool = True,
    ) -> list[object]:
        """One method call on the system bus; an error reply raises BusError."""
        reconnected = False
        while True:
            msg = dbus.MethodCallMessage(destination, path, interface, method)
            msg.set_auto_start(auto_start)
            if signature:
                msg.append(*args, signature=signature)
            replies: list[dbus.Message] = []
            self._bus.send_message_with_reply(msg, replies.append, CALL_TIMEOUT).block()
            reply = replies[0]
            if not isinstance(reply, dbus.ErrorMessage):
                return reply.get_args_list()  # type: ignore[no-any-return]
            name = reply.get_error_name()
            text = (reply.get_args_list() or [name])[0]
            if name == _DISCONNECTED and not reconnected:
                self._reconnect()  # dbus restarted: the call is sent once more (see _reconnect)
                reconnected = True
                continue
            if name not in _NO_SYSTEMD or destination != SYSTEMD:
                raise BusError(name, str(text))
            # Right after boot, or a restart of a socket-activated dbus, systemd (PID 1)
            # takes its name on the bus a moment after the bus answers.
            self._wait_until = self._wait_until or time.monotonic() + BUS_WAIT
            if not os.path.isdir("/run/systemd/system") or time.monotonic() > self._wait_until:
                raise SystemdError(f"systemd is not available on the system bus: {text}")
            time.sleep(0.05)

    def set_properties(self, unit: str, properties: list[Property]) -> None:
        """Change a running unit's properties now (runtime: until it stops)."""
        props = [(name, _variant(sig, value)) for name, sig, value in properties]
        try:
            self._call(ROOT, MANAGER, "SetUnitProperties", "sba(sv)", unit, True, props)
        except BusError as e:
            raise SystemdError(f"systemd refused to change {unit}: {e}") from None

    def kill(self, unit: str, who: str, signal: int) -> None:
        """Signal the unit's processes: who is "all" or "main"."""
        try:
            self._call(ROOT, MANAGER, "KillUnit", "ssi", unit, who, signal)
        except BusError as e:
            raise SystemdError(f"cannot signal {unit}: {e}") from None

    def attach(self, unit: str, pid: int) -> None:
        """Move a process into the unit's cgroup (exec joins a running container this way)."""
        try:
            self._call(ROOT, MANAGER, "AttachProcessesToUnit", "ssau", unit, "", [pid])
        except BusError as e:
            raise SystemdError(f"cannot move process {pid} into {unit}: {e}") from None

    def freeze(self, unit: str, frozen: bool) -> None:
        method = "FreezeUnit" if frozen else "ThawUnit"
        try:
            self._call(ROOT, MANAGER, method, "s", unit)
        except BusError as e:
            raise SystemdError(f"cannot {'freeze' if frozen else 'thaw'} {unit}: {e}") from None

    def unit_property(self, unit: str, interface: str, prop: str) -> object | None:
        """One property of a loaded unit, or None if it is not loaded."""
        path = self.unit_path(unit)
        if path is None:
            return None
        try:
            return self._call(path, PROPERTIES, "Get", "ss", interface, prop)[0]
        except BusError as e:
            if e.name in _NOT_THERE:
                return None
            raise

    def invocation(self, unit: str) -> str:
        """The unit's InvocationID (hex), new each time it starts; "" if it is not loaded."""
        found = self.unit_property(unit, UNIT, "InvocationID")
        return bytes(found).hex() if found is not None else ""  # type: ignore[call-overload,no-any-return]

    def unit_properties(self, path: str, interface: str) -> dict[str, object]:
        """All properties of one interface of a unit, by object path, in one call."""
        props: dict[str, object] = dict(self._call(path, PROPERTIES, "GetAll", "s", interface)[0])  # type: ignore[call-overload]
        return props

    def list_units(self, patterns: list[str]) -> list[tuple[str, str, str]]:
        """(name, active state, object path) of the loaded units matching the glob patterns."""
        units = self._call(ROOT, MANAGER, "ListUnitsByPatterns", "asas", [], patterns)[0]
        return [(str(u[0]), str(u[3]), str(u[6])) for u in units]  # type: ignore[attr-defined]

    def refuse_live(self, units: list[str]) -> None:
        """ContainerExists if any of `units` is live (one round trip; see _stopped_leftover)."""
        for unit, state, _ in self.list_units(units):
            if state in _ACTIVE and not self._stopped_leftover(unit, state):
                raise ContainerExists(f"container name is already in use: {unit} is {state}")

    def _stopped_leftover(self, unit: str, state: str | None) -> bool:
        """Stop `unit` if it is a live scope with no process, and say so. Its launcher died
        before systemd saw it run (pyctr was killed while starting it), and systemd does
        not notice a scope that never had a process to lose, at least on cgroup v1."""
        if not unit.endswith(".scope") or state != "active":
            return False
        from pyctr_systemd import cgroups, hierarchies

        group = self.unit_property(unit, SCOPE, "ControlGroup")
        if group is None or cgroups.procs(str(group)):
            return False
        self.stop(unit)
        hierarchies.remove(str(group))  # the v1 groups the dead pyctr made for it
        return True

    def reload(self) -> None:
        """systemctl daemon-reload: returns once systemd has read its unit files again."""
        try:
            self._call(ROOT, MANAGER, "Reload")
        except BusError as e:
            raise SystemdError(f"systemd could not reload its units: {e}") from None

    def start_transient(self, unit: str, properties: list[Property]) -> None:
        """Create the transient scope and return once its start job is done.

        The job's outcome is not in the job object; the caller checks the effect
        (its process in the unit's cgroup), which is what matters.
        """
        props = [(name, _variant(sig, value)) for name, sig, value in properties]
        try:
            job = self._start_transient(unit, props)
        except BusError as e:
            if e.name != "org.freedesktop.systemd1.UnitExists":
                raise SystemdError(f"systemd refused to start {unit}: {_why(e)}") from None
            # A leftover failed or dead unit of that name may be reset and reused;
            # a live one means the name is taken.
            state = self.active_state(unit)
            if state in _ACTIVE and not self._stopped_leftover(unit, state):
                raise ContainerExists(f"container name is already in use: {unit} is {state}") from None
            self.reset_failed(unit)
            try:
                job = self._start_transient(unit, props)
            except BusError as again:  # someone else took the name meanwhile
                raise ContainerExists(f"container name is already in use: {unit} exists ({again})") from None
        self._wait_job(job, unit)

    def _start_transient(self, unit: str, props: list[tuple[str, object]]) -> str:
        reply = self._call(ROOT, MANAGER, "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", props, [])
        return str(reply[0])

    def _wait_job(self, job: str, unit: str, timeout: float = JOB_TIMEOUT) -> None:
        # A Get on a running job is answered only once systemd is done with it
        # (it blocks in the cgroup migration), so a short fixed pause suffices.
        deadline, pause = time.monotonic() + timeout, POLL_INTERVAL
        while self._exists(job, JOB, "State"):
            if time.monotonic() > deadline:
                raise SystemdError(f"timed out waiting for systemd's job on {unit}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)  # a job that waits, e.g. for a stop timeout

    def _exists(self, path: str, interface: str, prop: str) -> bool:
        try:
            self._call(path, PROPERTIES, "Get", "ss", interface, prop)
        except BusError as e:
            if e.name in _NOT_THERE:
                return False
            raise
        return True

    def unit_path(self, unit: str) -> str | None:
        """The unit's object path if it is loaded; GetUnit never loads it."""
        try:
            return str(self._call(ROOT, MANAGER, "GetUnit", "s", unit)[0])
        except BusError as e:
            if e.name in _NOT_THERE:
                return None
            raise

    def active_state(self, unit: str) -> str | None:
        path = self.unit_path(unit)
        if path is None:
            return None
        return str(self._call(path, PROPERTIES, "Get", "ss", UNIT, "ActiveState")[0])

    def reset_failed(self, unit: str) -> None:
        try:
            self._call(ROOT, MANAGER, "ResetFailedUnit", "s", unit)
        except BusError as e:
            if e.name not in _NOT_THERE:
                raise

    def stop(self, unit: str, timeout: float = JOB_TIMEOUT, unload: bool = True) -> None:
        """Stop `unit` and wait until systemd has unloaded it (unless not `unload`:
        a unit with a file, pyctr@NAME.service, stays loaded).

        Asking is much faster than waiting: left alone, systemd notices an
        emptied scope only after ~15 ms; a stop job finishes in ~1 ms.
        """
        try:
            job = str(self._call(ROOT, MANAGER, "StopUnit", "ss", unit, "replace")[0])
        except BusError as e:
            if e.name in _NOT_THERE:
                return
            raise SystemdError(f"cannot stop {unit}: {e}") from None
        self._wait_job(job, unit, timeout)
        if not unload:
            return
        deadline = time.monotonic() + timeout
        # CollectMode=inactive-or-failed: collected right after the job, failed or not.
        while self.unit_path(unit) is not None:
            if time.monotonic() > deadline:
                raise SystemdError(f"{unit} is still loaded after stopping it")
            time.sleep(POLL_INTERVAL)
