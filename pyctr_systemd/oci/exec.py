"""exec: another process in a running container: its namespaces, its unit, its filter."""

from __future__ import annotations

import os

from pyctr_systemd import container, seccomp_profile, spec
from pyctr_systemd.errors import InvalidArgument, PyctrError
from pyctr_systemd.host import HOST
from pyctr_systemd.init import sync
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.oci.create import require_root, write_pid_file
from pyctr_systemd.state import Record, Store
from pyctr_systemd.systemd import Systemd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.effects import Host, Units


def exec_process(
    store: Store,
    container_id: str,
    process: spec.Process,
    *,
    detach: bool = False,
    pid_file: str = "",
    console_socket: str = "",
    bus: Units | None = None,
    host: Host = HOST,
) -> int:
    """Run `process` inside the running container: its namespaces, its unit's cgroup."""
    require_root()
    record, _ = lifecycle.loaded(store, container_id, "exec")
    if process.terminal and not console_socket:
        raise InvalidArgument("a terminal for exec needs --console-socket")
    launch = launch_spec(record, process, namespaces_of(record.pid), console_socket)
    with container.Forwarding() as forwarding:
        child = container.spawn_into(launch, bus or Systemd(), host, record.unit)
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


def launch_spec(
    record: Record, process: spec.Process, namespaces: tuple[tuple[int, str], ...], console_socket: str
) -> LaunchSpec:
    """What the launcher does for `process` in the container of `record`, whose init's
    namespaces that differ from ours are `namespaces`."""
    return LaunchSpec(
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


def _recorded_filter(record: Record) -> seccomp_profile.SyscallFilter | None:
    """The container's seccomp filter, which every process exec'd into it gets too."""
    recorded = record.process.get("seccomp")
    if recorded is None:
        return None
    host = os.uname()
    return seccomp_profile.parse(recorded, "state", "seccomp", frozenset(), host.machine, host.release)


def namespaces_of(pid: int) -> tuple[tuple[int, str], ...]:
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
