"""Containers as systemd services: pyctr@NAME (defined) and pyctr-NAME (`run -d`).

systemd makes the service's cgroup, with the container's limits, and runs
`pyctr service-start NAME` (pyctr@.service) or `pyctr service-run VALUES` (the
transient service of `pyctr run -d`) in it. pyctr launches the container there
as `pyctr run` would (no scope: the service is the container's unit), waits
until its payload is exec'd, hands the payload to systemd as the service's
main process (MAINPID=, READY=1) and exits. The payload, PID 1 of its own pid
namespace, is then systemd's child: `systemctl kill`, `status`, the exit
status, Restart= and Result=oom-kill act on it, its output goes to the
journal, and no Python stays resident.
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import json
import os
import sys
import time
from typing import Any

from pyctr_systemd import cgroups, definitions, hierarchies, names, rootfs, run_config
from pyctr_systemd.errors import ContainerExists, PyctrError, SystemdError
from pyctr_systemd.host import HOST
from pyctr_systemd.init import sync
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.limits import Limits, Property, unenforced, unit_properties
from pyctr_systemd.resources import Resources, properties
from pyctr_systemd.spec import launch_spec
from pyctr_systemd.systemd import SERVICE, UNIT, Systemd
from pyctr_systemd.unit import ACCOUNTING, STOP_TIMEOUT_USEC

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Host, Units

HANDOVER_TIMEOUT = 10.0
LEFTOVER_WAIT = 10.0  # for the processes of a stopped unit to be gone
# What a detached container keeps: none of `run -d`'s own options.
_NOT_PASSED = ("detach",)


def start_defined(name: str) -> int:
    """service-start: the ExecStart of pyctr@NAME.service."""
    definition = definitions.load(name)
    if "bundle" not in definition:
        return launch({**definitions.run_values(definition), "name": name}, names.defined_unit(name))
    config, warnings = definitions.bundle_config(str(definition["bundle"]))
    for warning in warnings:
        os.write(2, f"pyctr: warning: {warning}\n".encode())
    spec = launch_spec(config)
    spec.terminal = False  # the payload's output goes to the journal
    spec.keyring = names.keyring(name)
    return hand_over(spec, name, bool(definition.get("machine")), names.defined_unit(name))


def start_detached(values_json: str) -> int:
    """service-run: the ExecStart of `run -d`'s transient service."""
    values = json.loads(values_json)
    for key in ("args", "env", "security_opt"):
        values[key] = tuple(values.get(key, ()))
    return launch(values, names.detached_unit(values["name"]))


def launch(values: dict[str, Any], unit: str) -> int:
    """Launch the container of `pyctr run` options in this service's cgroup."""
    config = run_config.build(**values)
    spec = config.launch
    if not spec.rootfs:
        spec.rootfs, spec.ephemeral = rootfs.default(), True
    return hand_over(spec, config.name, config.machine, unit)


def hand_over(
    spec: LaunchSpec, name: str, machine: bool, unit: str, bus: Units | None = None, host: Host = HOST
) -> int:
    """Launch the container in this service's cgroup and hand its payload to systemd."""
    if not os.environ.get("NOTIFY_SOCKET"):
        raise PyctrError(f"this is run by systemd, as {unit}: use systemctl start {unit}")
    host.spare_launcher(spec)
    bus = bus or Systemd()
    bus.refuse_live(names.other_units(unit, name))
    child = host.launch(spec, lambda pid: None)  # the service's cgroup is the unit
    try:
        child.send(sync.START)
        error = child.error()  # waits for the exec (or the reason it failed)
        if error is not None:
            raise error
        if machine:
            from pyctr_systemd import machined

            machined.register(bus, name, child.pid, spec.rootfs)
        _set_main_pid(bus, unit, child.pid)
    except BaseException:
        os.kill(child.pid, _signal.SIGKILL)
        child.abort()
        raise
    return 0


def _set_main_pid(bus: Units, unit: str, pid: int) -> None:
    """Make `pid` the service's main process, and wait until systemd has taken it."""
    _notify(f"MAINPID={pid}", "READY=1")
    deadline = time.monotonic() + HANDOVER_TIMEOUT
    while bus.unit_property(unit, SERVICE, "MainPID") != pid:
        if time.monotonic() > deadline:
            raise SystemdError(f"systemd did not take process {pid} as the main process of {unit}")
        time.sleep(0.001)


def _notify(*fields: str) -> None:
    """sd_notify(3): one datagram to $NOTIFY_SOCKET, a path or (with @) an abstract name.
    By hand: pystemd would be a dependency for these lines."""
    import socket

    path = os.environ["NOTIFY_SOCKET"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto("\n".join(fields).encode(), "\0" + path[1:] if path.startswith("@") else path)


def run_detached(values: dict[str, Any], bus: Units | None = None, host: Host = HOST) -> int:
    """`pyctr run -d`: the container as the transient service pyctr-NAME.service."""
    name = names.validate(values["name"]) if values.get("name") else names.generate()
    values = {k: v for k, v in values.items() if k not in _NOT_PASSED} | {"name": name}
    config = run_config.build(**values)  # every check, before anything exists
    unified = host.unified()
    for warning in unenforced(config.limits, unified):
        os.write(2, f"pyctr: warning: {warning}\n".encode())
    values["args"], values["env"] = list(values["args"]), list(values["env"])
    values["security_opt"] = run_config.absolute_security_opts(values.get("security_opt", ()))
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "-m", "pyctr_systemd", "service-run", json.dumps(values)]
    unit = names.detached_unit(name)
    bus = bus or Systemd()
    bus.refuse_live(names.other_units(unit, name))
    try:
        _start_detached(bus, unit, name, argv, package, config.limits, unified)
    except ContainerExists:
        raise  # the name is another container's
    except BaseException:  # timed out, refused, interrupted: the unit goes with the failure
        try:
            bus.stop(unit, unload=False)  # a failed unit stays loaded until reset
            bus.reset_failed(unit)
        except PyctrError:
            pass  # the failure at hand is the one to report
        raise
    print(name)
    return 0


def _start_detached(
    bus: Units, unit: str, name: str, argv: list[str], package: str, limits: Limits, unified: bool
) -> None:
    bus.start_transient(
        unit,
        [
            ("Description", "s", f"pyctr container {name}"),
            ("Slice", "s", names.SLICE),
            ("Type", "s", "notify"),
            ("NotifyAccess", "s", "main"),
            ("ExecStart", "a(sasb)", [(sys.executable, argv, False)]),
            ("Environment", "as", [f"PYTHONPATH={package}"]),
            ("Delegate", "b", True),
            ("OOMPolicy", "s", "stop"),
            ("TimeoutStopUSec", "t", STOP_TIMEOUT_USEC),
            ("LogExtraFields", "aay", [f"CONTAINER_NAME={name}".encode()]),
            *ACCOUNTING,
            *unit_properties(limits, unified),
        ],
    )
    state = bus.unit_property(unit, UNIT, "ActiveState")
    if state != "active":
        raise PyctrError(f"container {name} did not start: {_last_journal_line(unit) or state}")


def stop(bus: Units, unit: str) -> None:
    """Stop a container's service and wait, as `delete` does, until its processes are gone.
    systemd may call the unit stopped while the rest of its pid namespace is still being
    killed ("remains running after unit stopped"), and then leaves its cgroups behind: empty
    by now, of a unit that is dead, they are removed here."""
    group = str(bus.unit_property(unit, SERVICE, "ControlGroup") or "")
    bus.stop(unit, unload=False)
    if not group or group == "/":
        return
    deadline = time.monotonic() + LEFTOVER_WAIT
    while cgroups.procs(group):
        if time.monotonic() > deadline:
            raise PyctrError(f"processes of {unit} are still there {LEFTOVER_WAIT:.0f}s after it stopped")
        time.sleep(0.01)
    if bus.active_state(unit) in ("inactive", "failed", None):
        for m in cgroups.mounts():
            try:
                hierarchies.remove_tree(m.path_of(group))
            except ValueError:
                continue  # a mount of another part of the hierarchy


def update(name: str, res: Resources, bus: Units | None = None, host: Host = HOST) -> None:
    """`pyctr update NAME`: new limits for a defined or detached container, live
    (SetUnitProperties) and, for a defined one, in its definition and drop-in too,
    so they outlast a daemon-reload or a restart."""
    bus = bus or Systemd()
    unified = host.unified()
    is_defined = name in definitions.defined()
    unit = names.defined_unit(name) if is_defined else names.detached_unit(name)
    if not is_defined and bus.unit_path(unit) is None:
        raise PyctrError(f"container {name} does not exist")
    props, warnings = properties(res, unified, devices=False)
    for warning in warnings:
        os.write(2, f"pyctr: warning: {warning}\n".encode())
    if is_defined:
        _persist(name, res, props, unified)
        bus.reload()
    if bus.active_state(unit) == "active" and props:
        bus.set_properties(unit, props)


def _persist(name: str, res: Resources, props: list[Property], unified: bool) -> None:
    """An update of a defined container, into its definition and drop-in."""
    definition = definitions.load(name)
    restart = str(definition["restart"])
    if "bundle" in definition:
        stored: list[list[str]] = definition.get("overrides", [])  # type: ignore[assignment]
        overrides = definitions.merged([(k, v) for k, v in stored], definitions.unit_settings(props))
        bundle, _ = definitions.bundle_config(str(definition["bundle"]))
        base, _ = definitions.bundle_properties(bundle, unified)
        settings = definitions.merged(definitions.unit_settings(base), overrides)
        dropin = definitions.render_dropin(name, restart, settings)
        definition["overrides"] = overrides
    else:
        values: dict[str, Any] = {**definitions.run_values(definition), **_run_options(res), "name": name}
        config = run_config.build(**values)
        props = unit_properties(config.limits, unified)
        dropin = definitions.render_dropin(name, restart, definitions.unit_settings(props))
        values["args"], values["env"] = list(values["args"]), list(values["env"])
        definition["run"] = values
    definitions.save(name, definition, dropin)


def _run_options(res: Resources) -> dict[str, object]:
    """The `pyctr run` option values that say what `res` does."""
    changed: dict[str, object] = {}
    if res.memory_limit is not None:
        changed["memory"] = None if res.memory_limit < 0 else str(res.memory_limit)
    if res.pids_limit is not None:
        changed["pids_limit"] = res.pids_limit
    if res.cpu_shares is not None:
        changed["cpu_shares"], changed["cpu_weight"] = res.cpu_shares, None
    if res.cpu_quota is not None:
        changed["cpus"] = res.cpu_quota / (res.cpu_period or 100_000)
    return changed


def _last_journal_line(unit: str) -> str:
    """The last line the unit's own processes logged (pyctr's error), not systemd's."""
    import subprocess

    for _ in range(20):  # journald may take a moment to store it
        done = subprocess.run(
            ["journalctl", f"_SYSTEMD_UNIT={unit}", "-n", "1", "-o", "cat", "--no-pager"],
            capture_output=True,
            text=True,
        )
        if done.stdout.strip():
            return done.stdout.strip().removeprefix("pyctr: ")
        time.sleep(0.05)
    return ""


def define(
    name: str, restart: str, values: dict[str, Any], bus: Units | None = None, host: Host = HOST
) -> list[str]:
    """`pyctr define NAME`: the definition of `pyctr run` option values (or of a bundle) and
    its drop-in, written and applied, or nothing if any step fails. Its warnings."""
    name = names.validate(name)
    root, command = run_config.split_args(values["command_only"], values["args"])
    warnings: list[str] = []
    if root is not None and definitions.is_bundle(root):
        definition, dropin, warnings = _bundle_definition(name, restart, root, command, values, host)
    else:
        config = run_config.build(**values, name=name)  # every check `pyctr run` makes
        props = unit_properties(config.limits, host.unified())
        dropin = definitions.render_dropin(name, restart, definitions.unit_settings(props))
        definition = {"restart": restart, "run": _as_stored(values, root)}
    systemd = bus or Systemd()

    def apply() -> None:
        definitions.forget_runtime_changes(name)  # the definition is the truth again
        systemd.reload()

    definitions.save_and_apply(name, definition, dropin, apply)
    return warnings


def _as_stored(values: dict[str, Any], root: str | None) -> dict[str, Any]:
    """Run option values that mean the same when systemd starts them: an
    absolute ROOTFS, and `-e KEY` with the caller's value now."""
    args = list(values["args"])
    if root is not None:
        args[0] = os.path.abspath(root)
    security = run_config.absolute_security_opts(values.get("security_opt", ()))
    return {**values, "args": args, "env": run_config.resolved(values["env"]), "security_opt": security}


def _bundle_definition(
    name: str, restart: str, bundle: str, command: tuple[str, ...], values: dict[str, Any], host: Host
) -> tuple[dict[str, object], str, list[str]]:
    """`define NAME BUNDLE`: everything comes from the bundle's config.json."""
    if command:
        raise PyctrError(f"bundle {bundle}: its command is config.json's process.args, not {command[0]!r}")
    given = [
        o.names[-1] for o in run_config.OPTIONS if o.dest in values and values[o.dest] not in (o.default, ())
    ]
    if set(given) - {"--machine"}:
        raise PyctrError(
            f"{given[0]}: a bundle's settings are in its config.json (give --restart and --machine only)"
        )
    config, warnings = definitions.bundle_config(bundle)
    props, more = definitions.bundle_properties(config, host.unified())
    dropin = definitions.render_dropin(name, restart, definitions.unit_settings(props))
    definition = {"restart": restart, "bundle": config.bundle, "machine": bool(values["machine"])}
    return definition, dropin, warnings + more


def undefine(name: str, bus: Units | None = None) -> None:
    """Stop a declared container and remove its definition and drop-in."""
    bus = bus or Systemd()
    unit = names.defined_unit(name)
    bus.stop(unit, unload=False)
    bus.reset_failed(unit)  # a failed run is forgotten with its definition
    definitions.remove(name)
    definitions.forget_runtime_changes(name)
    bus.reload()


def unit_of(bus: Units, name: str) -> str:
    """The service of a defined or detached container."""
    names.validate(name)
    if name in definitions.defined():
        return names.defined_unit(name)
    unit = names.detached_unit(name)
    if bus.unit_path(unit) is None:
        raise PyctrError(f"no container {name}: neither defined nor running detached")
    return unit


def remove(name: str, force: bool, bus: Units | None = None) -> None:
    """`pyctr rm`: a stopped detached container's service and its failed state (with
    force, a running one's too)."""
    bus = bus or Systemd()
    unit = names.detached_unit(name)
    state = bus.active_state(unit)
    if state is None:
        raise PyctrError(f"no detached container {name}")
    if state in ("active", "activating", "deactivating", "reloading"):
        if not force:
            raise PyctrError(f"container {name} is {state}: stop it first, or rm -f")
        # SIGKILL at once, as docker's rm -f: no SIGTERM and no grace. Left to StopUnit, the
        # grace depended on systemd's state: on cgroup v1 it kills at once a main process
        # that was not its child when it took it, until a daemon-reexec makes it its own.
        try:
            bus.kill(unit, "all", _signal.SIGKILL)
        except SystemdError:
            pass  # it ended meanwhile
    stop(bus, unit)
    bus.reset_failed(unit)
