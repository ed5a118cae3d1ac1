"""runc's verbs: same names, flags and output, so whatever drives runc drives pyctr.

Each command is a thin layer over pyctr_systemd.oci; the global options
(--root, --log, --log-format, --systemd-cgroup) are on the root group (cli.app)
and reach the commands as a Globals object in ctx.obj.
"""

from __future__ import annotations

import json
import os
import sys

import click

from pyctr_systemd import bundle as bundles
from pyctr_systemd import log, spec
from pyctr_systemd.cli import verbs
from pyctr_systemd.cli.verbs import Globals
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.oci import delete as oci_delete
from pyctr_systemd.oci import exec as oci_exec
from pyctr_systemd.oci import features as oci_features
from pyctr_systemd.oci import pause as oci_pause
from pyctr_systemd.oci import ps as oci_ps
from pyctr_systemd.oci import state as oci_state
from pyctr_systemd.oci import update as oci_update

pass_globals = click.make_pass_decorator(Globals)
ID = click.argument("container_id", metavar="ID")


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


@click.command("spec")
@click.option("-b", "--bundle", default=".", help="Directory to write config.json in.")
@click.option("--rootless", is_flag=True, help="A spec for a container run without root.")
def spec_command(bundle: str, rootless: bool) -> None:
    """Write a config.json with runc's defaults (sh in ./rootfs, with a terminal)."""
    bundles.write_spec(bundle, rootless)


_bundle = click.option("-b", "--bundle", default=".", help="The bundle: config.json and the rootfs.")
_pid_file = click.option("--pid-file", help="Write the container's pid (as the host sees it) here.")
_console_socket = click.option(
    "--console-socket", help="Unix socket to send the terminal's master to (when config.json asks for one)."
)
_no_pivot = click.option(
    "--no-pivot", is_flag=True, help="Enter the rootfs with chroot instead of pivot_root."
)
_no_new_keyring = click.option(
    "--no-new-keyring", is_flag=True, help="Keep the caller's session keyring (default: one of its own)."
)


@click.command()
@_bundle
@_pid_file
@_console_socket
@_no_pivot
@_no_new_keyring
@ID
@pass_globals
def create(
    g: Globals,
    container_id: str,
    bundle: str,
    pid_file: str | None,
    console_socket: str | None,
    no_pivot: bool,
    no_new_keyring: bool,
) -> None:
    """Create a container from a bundle; it waits for `start` to run its process."""
    verbs.create(g, container_id, bundle, pid_file, console_socket, no_pivot, no_new_keyring)


@click.command()
@ID
@pass_globals
def start(g: Globals, container_id: str) -> None:
    """Run the process of a created container."""
    verbs.start(g, container_id)


@click.command("run")
@_bundle
@_pid_file
@_console_socket
@_no_pivot
@click.option("-d", "--detach", is_flag=True, help="Return once the container runs.")
@_no_new_keyring
@ID
@pass_globals
def run_bundle(
    g: Globals,
    container_id: str,
    bundle: str,
    pid_file: str | None,
    console_socket: str | None,
    no_pivot: bool,
    detach: bool,
    no_new_keyring: bool,
) -> int:
    """Create and start a container from a bundle; wait for it unless -d."""
    return verbs.run(g, container_id, bundle, pid_file, console_socket, no_pivot, detach, no_new_keyring)


@click.command()
@ID
@pass_globals
def state(g: Globals, container_id: str) -> None:
    """Print the container's state (runtime-spec JSON)."""
    verbs.state(g, container_id)


_format = click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")


@click.command("list")
@_format
@click.option("-q", "--quiet", is_flag=True, help="Only the ids.")
@pass_globals
def list_command(g: Globals, fmt: str, quiet: bool) -> None:
    """List the containers under --root."""
    found = oci_state.list_all(g.store)
    if quiet:
        for s in found:
            click.echo(s["id"])
    elif fmt == "json":
        click.echo(json.dumps(found))
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[str(s[k]) for k in ("id", "pid", "status", "bundle", "created")] + ["root"] for s in found]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            click.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "   " + r[-1])


@click.command(context_settings={"ignore_unknown_options": True})
@_format
@ID
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_globals
def ps(g: Globals, fmt: str, container_id: str, ps_args: tuple[str, ...]) -> None:
    """Show the container's processes (ps, default -ef)."""
    found = oci_ps.pids(g.store, container_id)
    if fmt == "json":
        if ps_args:
            raise InvalidArgument("ps arguments cannot be combined with --format json")
        click.echo(json.dumps(found))
    else:
        click.echo(oci_ps.ps_table(found, list(ps_args)), nl=False)


@click.command()
@click.option("-a", "--all", "all_processes", is_flag=True, help="Signal every process of the container.")
@ID
@click.argument("signal", default="SIGTERM")
@pass_globals
def kill(g: Globals, container_id: str, signal: str, all_processes: bool) -> None:
    """Send a signal (name or number, default SIGTERM) to the container's init."""
    verbs.kill(g, container_id, signal, all_processes)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill the container first if it runs.")
@ID
@pass_globals
def delete(g: Globals, container_id: str, force: bool) -> None:
    """Delete a stopped container: its unit, its state, then poststop hooks."""
    verbs.delete(g, container_id, force)


@click.command()
@pass_globals
def gc(g: Globals) -> None:
    """Remove what pyctr processes killed midway left: units, groups, state directories."""
    for line in oci_delete.gc(g.store):
        click.echo(line)


@click.command()
@ID
@pass_globals
def pause(g: Globals, container_id: str) -> None:
    """Freeze every process of the container."""
    oci_pause.pause(g.store, container_id)


@click.command()
@ID
@pass_globals
def resume(g: Globals, container_id: str) -> None:
    """Thaw a paused container."""
    oci_pause.resume(g.store, container_id)


@click.command()
@click.option("-r", "--resources", "resources_file", help="JSON linux.resources to apply ('-' for stdin).")
@click.option("--memory", help="Memory limit (MemoryMax).")
@click.option("--memory-reservation", help="Memory reservation (MemoryLow, cgroup v2).")
@click.option("--memory-swap", help="Memory plus swap limit, as the runtime-spec counts it.")
@click.option("--pids-limit", type=click.IntRange(min=-1), help="Maximum number of tasks (TasksMax).")
@click.option(
    "--cpu-shares", type=click.IntRange(2, 262144), help="CPU shares (CPUShares, or CPUWeight on cgroup v2)."
)
@click.option(
    "--cpu-quota", type=click.IntRange(min=-1), help="CPU time in microseconds per period (CPUQuota)."
)
@click.option(
    "--cpu-period",
    type=click.IntRange(1000, 1_000_000),
    help="CPU period in microseconds (CPUQuotaPeriodSec).",
)
@click.option("--cpuset-cpus", help="CPUs to run on (AllowedCPUs, cgroup v2).")
@click.option("--cpuset-mems", help="Memory nodes (AllowedMemoryNodes, cgroup v2).")
@ID
@pass_globals
def update(g: Globals, container_id: str, resources_file: str | None, **flags: object) -> None:
    """Change a running container's limits, live, through its unit's properties."""
    warnings: list[str] = []
    if resources_file is not None:
        text = sys.stdin.buffer.read() if resources_file == "-" else _read(resources_file)
        source = "stdin" if resources_file == "-" else resources_file
        res = spec.parse_resources(spec.loads(text, source), warnings, "", source)
    else:
        res = oci_update.from_flags(**flags)  # type: ignore[arg-type]
    if container_id in g.store.ids():
        oci_update.update(g.store, container_id, res, warnings)
    else:  # a defined or detached container (pyctr define, pyctr run -d)
        from pyctr_systemd import service

        service.update(container_id, res)


def _read(path: str) -> bytes:
    """The file's bytes: spec.loads decodes them, and says so in one line if it cannot."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-p", "--process", "process_file", help="A runtime-spec process JSON to run.")
@click.option("-t", "--tty", is_flag=True, help="Give the process a terminal (needs --console-socket).")
@click.option("-d", "--detach", is_flag=True, help="Return once the process runs.")
@click.option("-e", "--env", multiple=True, metavar="KEY=VALUE", help="Add an environment variable.")
@click.option("--cwd", default="", help="Working directory in the container.")
@click.option("-u", "--user", default="", help="UID[:GID] to run as.")
@_pid_file
@_console_socket
@ID
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_globals
def exec_command(
    g: Globals,
    container_id: str,
    command: tuple[str, ...],
    process_file: str | None,
    tty: bool,
    detach: bool,
    env: tuple[str, ...],
    cwd: str,
    user: str,
    pid_file: str | None,
    console_socket: str | None,
) -> int:
    """Run a process in a running container: its namespaces, its unit."""
    store = g.store
    if process_file:
        data = spec.loads(_read(process_file), process_file)
        warnings: list[str] = []
        process = spec.parse_process(data, warnings, "process")
        if tty:
            process.terminal = True
        for w in warnings:
            log.warning(w)
    else:
        if not command:
            raise InvalidArgument("exec needs a command, or --process")
        record = store.load(container_id)
        process = oci_exec.process_for_exec(record, list(command), env=env, cwd=cwd, tty=tty, user=user)
    return oci_exec.exec_process(
        store,
        container_id,
        process,
        detach=detach,
        pid_file=os.path.abspath(pid_file) if pid_file else "",
        console_socket=os.path.abspath(console_socket) if console_socket else "",
    )


@click.command()
def features() -> None:
    """Print what this runtime supports (runc's features JSON)."""
    _print_json(oci_features.features())


COMMANDS = (
    spec_command,
    create,
    start,
    state,
    list_command,
    ps,
    kill,
    delete,
    gc,
    pause,
    resume,
    update,
    exec_command,
    features,
)
