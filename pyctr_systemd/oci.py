"""The OCI runtime: runc's verbs on containers that are systemd scopes.

create makes the container up to the exec of its payload (the launcher then
waits on ROOT/ID/exec.fifo) and returns; start opens the fifo; the payload's
process stays a child of whoever called create (podman's conmon is a
subreaper), as runc's does. Limits, signals to all processes, freezing and
live updates go through systemd; state lives under --root (pyctr_systemd.state).
"""

from __future__ import annotations

import _signal  # signal.py adds enums, and importing enum costs ~4 ms
import os
import select

from pyctr_systemd import (
    cgroups,
    container,
    freezer,
    hierarchies,
    hooks,
    log,
    mounts,
    names,
    resources,
    seccomp_profile,
    spec,
    unit,
)
from pyctr_systemd.errors import InvalidArgument, NotRoot, PyctrError, RootfsError, SystemdError
from pyctr_systemd.init import sync
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.state import (
    DamagedState,
    InvalidState,
    NoSuchContainer,
    Record,
    Store,
    UnsafeState,
    alive,
    named_for,
    now,
    oci_state,
    process_start_time,
)
from pyctr_systemd.systemd import UNIT, Systemd

KILL_WAIT = 10.0  # seconds for a killed container's init to go


def _require_root() -> None:
    if os.geteuid() != 0:
        raise NotRoot("pyctr must be run as root")


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
) -> tuple[sync.Child, Record]:
    """Create the container; on any failure nothing is left (no process, unit or state).

    own_console: a socket path of our own for a terminal (`run` in the foreground);
    config: the bundle's config.json, if the caller has read it already.
    """
    _require_root()
    names.validate_id(container_id)
    config = config or spec.load(opts.bundle)
    spec.refuse_host_sysctls(config)
    if not os.path.isdir(config.root_path):
        raise RootfsError(f"rootfs {config.root_path} does not exist or is not a directory")
    if config.process.apparmor_profile and not _apparmor_enabled():
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
    unified = cgroups.is_unified()
    props, more = resources.properties(config.resources, unified, v1_cpuset=True)
    props += [("Delegate", "b", True), *unit.annotation_properties(config.annotations)]
    for message in warnings + config.warnings + more:
        log.warning(message)
    bus = Systemd()
    if name.unit == names.scope_unit(container_id):  # pyctr's own unit names: one name, one container
        bus.refuse_live(names.other_units(name.unit, container_id))
    store.reserve(container_id)
    try:
        return _create(store, container_id, opts, config, name, props, bus, console)
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
    bus: Systemd,
    console: str,
) -> tuple[sync.Child, Record]:
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
        launch, name, f"pyctr container {container_id}", props, bus, before_go, cpuset
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
        container.stop_quietly(bus, name.unit, record.cgroup)
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


def start(store: Store, container_id: str) -> None:
    record = store.load(container_id)
    status = store.status(record)
    if status != "created":
        raise InvalidState(f"cannot start a container that is {status} (only a created one)")
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        raise InvalidState(f"container {container_id} ended before it could start") from None
    try:
        _release(store.fifo(container_id), pidfd, container_id)
    finally:
        os.close(pidfd)
    _run_recorded_hooks(record, "poststart", "running")


def _run_recorded_hooks(record: Record, kind: str, status: str) -> None:
    """poststart and poststop: their failures are warnings (runtime-spec), not errors."""
    for hook in record.hooks.get(kind, []):
        try:
            hooks.run(hooks.from_json(hook), oci_state(record, status))
        except hooks.HookError as e:
            log.warning(f"{kind} {e}")


def _release(path: str, pidfd: int, container_id: str) -> None:
    """Open the exec fifo (the container's init waits for a reader) and read its byte.

    The path goes at once: whoever opened it first starts the container, and
    the status is "running" from then on (the init holds the fifo open itself).
    """
    try:
        fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidState(f"container {container_id} is already started") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        os.close(fifo)
        raise InvalidState(f"container {container_id} is already started") from None
    try:
        poller = select.poll()
        poller.register(fifo, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if fifo in ready and ready[fifo] & select.POLLIN and os.read(fifo, 1):
                return
            if pidfd in ready:
                raise InvalidState(f"container {container_id} ended before it could start")
            if fifo in ready:  # a writer came and went without a word: not our init
                poller.unregister(fifo)
    finally:
        os.close(fifo)


def run(store: Store, container_id: str, opts: CreateOptions, detach: bool) -> int:
    """create + start; in the foreground, wait and delete, returning the payload's status."""
    if detach:
        create(store, container_id, opts)
        _start_or_delete(store, container_id)
        return 0
    from pyctr_systemd import console

    config = spec.load(opts.bundle)
    own = config.process.terminal and not opts.console_socket
    with container.Forwarding() as forwarding, console.Server(own) as server:
        child, record = create(store, container_id, opts, server.path, config)
        try:
            forwarding.to(child.pid)
            master = server.receive() if server.path else -1
        except BaseException:
            delete(store, container_id, force=True)
            raise
        _start_or_delete(store, container_id)
        child.close()
        if master >= 0:
            console.proxy(master, forwarding.pidfd)
        status = container.wait(child, forwarding.pidfd)
    error = child.error()
    delete(store, container_id, force=True)
    if error is not None:
        raise error
    return container.exit_code(status)


def _start_or_delete(store: Store, container_id: str) -> None:
    try:
        start(store, container_id)
    except BaseException:
        delete(store, container_id, force=True)
        raise


def state(store: Store, container_id: str) -> dict[str, object]:
    record = store.load(container_id)
    return oci_state(record, _status(store, record))


def _status(store: Store, record: Record) -> str:
    status = store.status(record)  # one look at the process: whether it lives, where
    return "paused" if status == "running" and freezer.frozen(record.pid) else status


def list_all(store: Store) -> list[dict[str, object]]:
    found = []
    for container_id in store.ids():
        try:
            found.append(state(store, container_id))
        except NoSuchContainer:
            continue  # deleted meanwhile
        except (UnsafeState, DamagedState) as e:
            log.warning(str(e))
    return found


def _running(store: Store, container_id: str) -> tuple[Record, str]:
    """The record of a container that is not stopped, and its status."""
    record = store.load(container_id)
    status = _status(store, record)
    if status == "stopped":
        raise InvalidState(f"{container_id}: container not running")  # engines match runc's words
    return record, status


def parse_signal(text: str) -> int:
    """A signal by number or name: 9, KILL, SIGKILL, kill."""
    import signal

    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        member = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if member is not None:
            return int(member)
    raise InvalidArgument(f"invalid signal {text!r}")


def kill(store: Store, container_id: str, sig: int, all_processes: bool = False) -> None:
    """As runc: --all on a stopped container signals what is left in its unit and succeeds
    (containerd's shim sends it to every container it removes); a plain kill is refused."""
    if not all_processes:
        _signal_init(_running(store, container_id)[0], sig)
        return
    record = store.load(container_id)
    bus = Systemd()
    stopped = _status(store, record) == "stopped"
    if stopped and bus.invocation(record.unit) != record.invocation:
        return  # its unit is gone, or another container's now
    try:
        bus.kill(record.unit, "all", sig)
    except SystemdError:
        if not stopped:
            raise  # a stopped container's unit may end meanwhile


def _signal_init(record: Record, sig: int) -> None:
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return
    try:
        if alive(record):  # checked after the pidfd is open: it holds the container's init
            _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def delete(store: Store, container_id: str, force: bool = False) -> None:
    try:
        record = store.load(container_id)
    except NoSuchContainer:
        if os.path.isdir(os.path.join(store.root, container_id)):  # a create killed midway
            remove_unfinished(store, Systemd(), container_id)
        if force:
            return
        raise
    except DamagedState:
        if not force:
            raise
        remove_unfinished(store, Systemd(), container_id)
        return
    status = _status(store, record)
    if status in ("running", "paused") and not force:
        raise InvalidState(f"cannot delete container {container_id} that is not stopped: {status}")
    bus = Systemd()
    if status != "stopped":
        if status == "paused":
            freezer.thaw(bus, record.unit, record.pid)
        _kill_and_wait(bus, record)
    # A stopped container's unit may be gone, or its name another container's now.
    current = record.invocation if status != "stopped" else bus.invocation(record.unit)
    if current == record.invocation:
        bus.stop(record.unit)
    if current in (record.invocation, ""):  # else the groups of that name are the other's
        freezer.forget(record.unit)
        hierarchies.remove(record.cgroup)
    _run_recorded_hooks(record, "poststop", "stopped")
    store.remove(container_id)


def remove_unfinished(store: Store, bus: Systemd, container_id: str) -> list[str]:
    """What a create killed midway left, or a container whose state is damaged: its unit
    (a launcher may wait in it for a start that never comes), pyctr's v1 groups, its
    directory. The units it stopped."""
    if store.being_created(container_id):
        raise InvalidState(f"cannot delete container {container_id}: it is being created")
    stopped = []
    for name, _, _ in bus.list_units([f"*-{container_id}.scope", f"{container_id}.scope"]):
        description = bus.unit_property(name, UNIT, "Description")
        if not named_for(name, container_id) or description != f"pyctr container {container_id}":
            continue  # a unit of that name that pyctr did not make for this container
        try:
            bus.kill(name, "all", _signal.SIGKILL)
        except SystemdError:
            pass  # it went meanwhile
        bus.stop(name)
        freezer.forget(name)
        stopped.append(name)
    # Its unit may have gone by itself, leaving the groups systemd does not manage.
    hierarchies.remove_orphans(lambda name: named_for(name, container_id), settled=0)
    store.remove(container_id)
    return stopped


def _kill_and_wait(bus: Systemd, record: Record) -> None:
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return
    try:
        try:
            bus.kill(record.unit, "all", _signal.SIGKILL)
        except SystemdError:
            _signal_init(record, _signal.SIGKILL)  # its unit is gone already
        if not select.select([pidfd], [], [], KILL_WAIT)[0]:
            raise PyctrError(f"container {record.id} did not end within {KILL_WAIT:.0f}s of SIGKILL")
    finally:
        os.close(pidfd)


def pause(store: Store, container_id: str) -> None:
    record, status = _running(store, container_id)
    if status != "running":
        raise InvalidState(f"{container_id}: container not running")
    freezer.freeze(Systemd(), record.unit, record.pid)


def resume(store: Store, container_id: str) -> None:
    record, status = _running(store, container_id)
    if status != "paused":
        raise InvalidState(f"container {container_id} is not paused")
    freezer.thaw(Systemd(), record.unit, record.pid)


def pids(store: Store, container_id: str) -> list[int]:
    record, _ = _running(store, container_id)
    group = Systemd().unit_property(record.unit, "org.freedesktop.systemd1.Scope", "ControlGroup")
    return cgroups.procs(str(group)) if group else []


def ps_table(found: list[int], ps_args: list[str]) -> str:
    """`ps ps_args` limited to `found`, header kept (what runc ps prints)."""
    import subprocess

    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise InvalidArgument(f"ps failed: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument("ps output has no PID column (give ps arguments that print one)")
    column = header.index("PID")
    wanted = {str(p) for p in found}
    keep = [line for line in lines[1:] if _field(line, column) in wanted]
    return "\n".join([lines[0], *keep]) + "\n"


def _field(line: str, column: int) -> str:
    fields = line.split()
    return fields[column] if column < len(fields) else ""


def update(store: Store, container_id: str, res: resources.Resources, warnings: list[str]) -> None:
    record, _ = _running(store, container_id)
    unified = cgroups.is_unified()
    props, more = resources.properties(res, unified, devices=bool(res.devices), v1_cpuset=True)
    for message in warnings + more:
        log.warning(message)
    if props:
        Systemd().set_properties(record.unit, props)
    if not unified and (res.cpu_cpus or res.cpu_mems):
        hierarchies.update_cpuset(record.cgroup, res.cpu_cpus, res.cpu_mems)


def exec_process(
    store: Store,
    container_id: str,
    process: spec.Process,
    *,
    detach: bool = False,
    pid_file: str = "",
    console_socket: str = "",
) -> int:
    """Run `process` inside the running container: its namespaces, its unit's cgroup."""
    _require_root()
    record, status = _running(store, container_id)
    if status != "running":
        raise InvalidState(f"cannot exec in container {container_id}: it is not running")
    if process.terminal and not console_socket:
        raise InvalidArgument("a terminal for exec needs --console-socket")
    namespaces = _namespaces_of(record.pid)
    launch = LaunchSpec(
        # A container in pyctr's mount namespace is only chrooted: join its root the same way.
        rootfs=""
        if any(flag == spec.NAMESPACES["mount"] for flag, _ in namespaces)
        else f"/proc/{record.pid}/root",
        argv=process.args,
        env=process.env,
        cwd=process.cwd,
        namespaces=namespaces,
        uid=process.uid,
        gid=process.gid,
        additional_gids=process.additional_gids,
        umask=process.umask,
        capabilities=process.capabilities,
        rlimits=process.rlimits,
        no_new_privileges=process.no_new_privileges,
        seccomp=_recorded_filter(record),
        keyring=str(record.process.get("keyring", "")),
        oom_score_adj=process.oom_score_adj,
        terminal=process.terminal,
        console_size=process.console_size,
        console_socket=console_socket,
    )
    bus = Systemd()
    with container.Forwarding() as forwarding:
        child = container.spawn_into(launch, bus, record.unit)
        forwarding.to(child.pid)
        if pid_file:
            write_pid_file(pid_file, child.pid)
        child.send(sync.START)
        if detach:
            child.close()
            error = child.error()  # the pipe closes at a successful exec
            if error is not None:
                os.waitpid(child.pid, 0)
                raise error
            return 0
        ended = container.wait(child, forwarding.pidfd)
    error = child.error()
    if error is not None:
        raise error
    return container.exit_code(ended)


def _recorded_filter(record: Record) -> seccomp_profile.SyscallFilter | None:
    """The container's seccomp filter, which every process exec'd into it gets too."""
    recorded = record.process.get("seccomp")
    if recorded is None:
        return None
    host = os.uname()
    return seccomp_profile.parse(recorded, "state", "seccomp", frozenset(), host.machine, host.release)


def _namespaces_of(pid: int) -> tuple[tuple[int, str], ...]:
    """Every namespace of `pid` that differs from ours, to join by path."""
    joined = []
    for name, flag in spec.NAMESPACES.items():
        proc_name = {"network": "net", "mount": "mnt"}.get(name, name)
        theirs, ours = f"/proc/{pid}/ns/{proc_name}", f"/proc/self/ns/{proc_name}"
        try:
            if os.stat(theirs).st_ino != os.stat(ours).st_ino:
                joined.append((flag, theirs))
        except FileNotFoundError:
            continue
    if any(flag in (spec.NAMESPACES["user"], spec.NAMESPACES["time"]) for flag, _ in joined):
        raise PyctrError("cannot exec: the container has a user or time namespace, which pyctr does not join")
    return tuple(joined)


def process_for_exec(
    record: Record,
    args: list[str],
    *,
    env: tuple[str, ...] = (),
    cwd: str = "",
    tty: bool = False,
    user: str = "",
) -> spec.Process:
    """A Process for `exec ID CMD`: the container's own user, environment and capabilities."""
    base = record.process
    env_map = dict(e.split("=", 1) for e in base["env"] if "=" in e)  # type: ignore[attr-defined]
    for item in env:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=VALUE")
        env_map[key] = value
    uid, gid = base["uid"], base["gid"]
    if user:
        u, _, g = user.partition(":")
        if not u.isdigit() or (g and not g.isdigit()):
            raise InvalidArgument(f"invalid --user {user!r}: use UID[:GID]")
        uid, gid = int(u), int(g) if g else 0
    data = {
        "args": args,
        "env": [f"{k}={v}" for k, v in env_map.items()],
        "cwd": cwd or str(base.get("cwd", "/")),
        "terminal": tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": base["additionalGids"]},
        "capabilities": {
            name: [spec.CAPABILITIES_BY_NUMBER[c] for c in numbers]
            for name, numbers in base["capabilities"].items()  # type: ignore[attr-defined]
        },
        "noNewPrivileges": base["noNewPrivileges"],
        "apparmorProfile": base.get("apparmorProfile", ""),
    }
    return spec.parse_process(data, [], "exec")


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def features() -> dict[str, object]:
    """What this runtime supports, in the shape of runc's `features` (runtime-spec features.md)."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": list(hooks.KINDS),
        "mountOptions": sorted(
            [*mounts.FLAG_NAMES, *mounts.PROPAGATION, "bind", "rbind"],
        ),
        "linux": {
            "namespaces": [n for n in spec.NAMESPACES if n not in spec.UNSUPPORTED_NAMESPACES],
            "capabilities": sorted(spec.CAPABILITY_NUMBERS),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False},
            "seccomp": _seccomp_features(),
            "apparmor": {"enabled": _apparmor_enabled()},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "org.systemd.property.*": "a resource or accounting property of the container's unit"
        },
    }


def _seccomp_features() -> dict[str, object]:
    return {
        "enabled": True,
        "actions": sorted(seccomp_profile.ACTIONS),
        "operators": sorted(seccomp_profile.OPERATORS),
        "archs": sorted(seccomp_profile.ARCHITECTURES),
        "knownFlags": sorted(seccomp_profile.FLAGS),
        "supportedFlags": sorted(f for f in seccomp_profile.FLAGS if f in SUPPORTED_SECCOMP_FLAGS),
    }


# libseccomp 2.5.4's binding sets these (init.identity); it has no way to ask for the others.
SUPPORTED_SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
)
