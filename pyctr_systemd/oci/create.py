"""create: the container up to the exec of its payload, waiting on its exec fifo."""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os

from pyctr_systemd import cgroups, container, hooks, log, names, resources, spec, unit
from pyctr_systemd.errors import InvalidArgument, NotRoot, RootfsError
from pyctr_systemd.host import HOST
from pyctr_systemd.state import Record, Store, named_for, now, oci_state, process_start_time
from pyctr_systemd.systemd import Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Host, Launched, Units


class CreateOptions:
    __slots__ = ("bundle", "pid_file", "console_socket", "no_pivot", "systemd_cgroup", "no_new_keyring")

    def __init__(
        self,
        bundle: str = ".",
        pid_file: str = "",
        console_socket: str = "",
        no_pivot: bool = False,
        systemd_cgroup: bool = False,
        no_new_keyring: bool = False,
    ) -> None:
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.no_pivot, self.systemd_cgroup, self.no_new_keyring = no_pivot, systemd_cgroup, no_new_keyring


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRoot("pyctr must be run as root")


def write_pid_file(path: str, pid: int) -> None:
    """The pid, no newline (what conmon reads), written whole or not at all."""
    tmp = f"{path}.pyctr-tmp"
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise InvalidArgument(f"cannot write pid file {path}: {e.strerror}") from None


def create(
    store: Store,
    container_id: str,
    opts: CreateOptions,
    own_console: str = "",
    config: spec.Config | None = None,
    *,
    bus: Units | None = None,
    host: Host = HOST,
) -> tuple[Launched, Record]:
    """Create the container; on any failure nothing is left (no process, unit or state).

    own_console: a socket path of our own for a terminal (`run` in the foreground);
    config: the bundle's config.json, if the caller has read it already.
    """
    require_root()
    names.validate_id(container_id)
    config = config or spec.load(opts.bundle)
    spec.refuse_host_sysctls(config)
    if not os.path.isdir(config.root_path):
        raise RootfsError(f"rootfs {config.root_path} does not exist or is not a directory")
    if config.process.apparmor_profile and not apparmor_enabled():
        raise InvalidArgument(
            f"config.json: process.apparmorProfile: {config.process.apparmor_profile!r} asked for, "
            "but AppArmor is not enabled on this host"
        )
    console = opts.console_socket or own_console
    if config.process.terminal and not console:
        raise InvalidArgument(
            "config.json asks for a terminal: give --console-socket (or use run in the foreground)"
        )
    name, warnings = unit.from_cgroups_path(config.cgroups_path, opts.systemd_cgroup, container_id)
    if not named_for(name.unit, container_id):  # else no later command could trust it is ours
        raise InvalidArgument(
            f"config.json: linux.cgroupsPath: unit {name.unit} must be named for the container "
            f"(PREFIX-{container_id}.scope)"
        )
    props, more = resources.properties(config.resources, host.unified(), v1_cpuset=True)
    props += [("Delegate", "b", True), *unit.annotation_properties(config.annotations)]
    for message in warnings + config.warnings + more:
        log.warning(message)
    bus = bus or Systemd()
    if name.unit == names.scope_unit(container_id):  # pyctr's own unit names: one name, one container
        bus.refuse_live(names.other_units(name.unit, container_id))
    store.reserve(container_id)
    try:
        return _create(store, container_id, opts, config, name, props, bus, host, console)
    except BaseException:
        store.remove(container_id)
        raise


def _create(
    store: Store,
    container_id: str,
    opts: CreateOptions,
    config: spec.Config,
    name: unit.UnitName,
    props: list[tuple[str, str, object]],
    bus: Units,
    host: Host,
    console: str,
) -> tuple[Launched, Record]:
    record = Record(
        id=container_id,
        pid=0,
        start_time=0,
        bundle=config.bundle,
        rootfs=config.root_path,
        created=now(),
        annotations=config.annotations,
        unit=name.unit,
        hooks={kind: [h.as_json() for h in config.hooks[kind]] for kind in ("poststart", "poststop")},
        process=_process_defaults(config, container_id, opts.no_new_keyring),
    )
    launch = spec.launch_spec(config)
    launch.pivot = not opts.no_pivot
    launch.keyring = "" if opts.no_new_keyring else names.keyring(container_id)
    launch.exec_fifo = store.fifo(container_id)
    launch.console_socket = console if config.process.terminal else ""
    launch.create_container_hooks = config.hooks["createContainer"]
    launch.start_container_hooks = config.hooks["startContainer"]
    launch.hook_state = oci_state(record, "creating")

    def before_go(pid: int) -> None:
        record.pid = pid
        hooks.run_all(config.hooks["prestart"] + config.hooks["createRuntime"], oci_state(record, "creating"))

    cpuset = (config.resources.cpu_cpus, config.resources.cpu_mems)
    child, paths = container.create(
        launch, name, f"pyctr container {container_id}", props, bus, host, before_go, cpuset
    )
    try:
        record.cgroup = cgroups.unit_cgroup(paths) or ""
        record.invocation = bus.invocation(name.unit)
        record.pid = child.pid
        record.start_time = process_start_time(child.pid) or 0
        store.save(record)
        if opts.pid_file:
            write_pid_file(opts.pid_file, child.pid)
    except BaseException:
        os.kill(child.pid, _signal.SIGKILL)
        child.abort()
        container.stop_quietly(bus, host, name.unit, record.cgroup)
        raise
    return child, record


def _process_defaults(config: spec.Config, container_id: str, no_new_keyring: bool) -> dict[str, object]:
    """What `exec` takes from the container's own process: without --process all of it, with
    it the seccomp filter and the keyring, as runc's exec does."""
    p = config.process
    return {
        "env": list(p.env),
        "cwd": p.cwd,
        "uid": p.uid,
        "gid": p.gid,
        "additionalGids": list(p.additional_gids),
        "capabilities": {
            name: sorted(getattr(p.capabilities, name))
            for name in ("bounding", "effective", "permitted", "inheritable", "ambient")
        },
        "noNewPrivileges": p.no_new_privileges,
        "apparmorProfile": p.apparmor_profile,
        "seccomp": config.seccomp.to_oci() if config.seccomp is not None else None,
        "keyring": "" if no_new_keyring else names.keyring(container_id),
    }


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False
