"""Declared containers: define, undefine, defined, and the service's own start.

`define` takes `pyctr run`'s options (the same table, run_config.OPTIONS) plus a
restart policy; the definition is checked by building the container's run
configuration from it, exactly as `systemctl start pyctr@NAME` will.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from pyctr_systemd import definitions, names, run_config, service, stats
from pyctr_systemd.cli import run
from pyctr_systemd.errors import PyctrError
from pyctr_systemd.systemd import UNIT, Systemd


class _DefineCommand(click.Command):
    """`define NAME [OPTIONS] [ROOTFS] [-- CMD]`: the name first, then what `pyctr run` takes."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-"):
            ctx.meta["pyctr.name"], args = args[0], args[1:]
        probe = [a for a in args if not a.startswith("--restart=")]  # an option `run` does not have
        if "--restart" in probe[: probe.index("--") if "--" in probe else None]:
            del probe[probe.index("--restart") : probe.index("--restart") + 2]
        ctx.meta["pyctr.command_only"] = run.first_word(probe) == "--"
        return super().parse_args(ctx, args)


def run_options(exclude: tuple[str, ...] = ()) -> list[click.Parameter]:
    """click options for `pyctr run`'s table (run_config.OPTIONS), for run and define alike."""
    return [
        click.Option(
            [*o.names, o.dest],
            type=None if o.flag else o.type,
            multiple=o.multiple,
            is_flag=o.flag,
            default=o.default,
            metavar=o.metavar,
            help=o.help,
        )
        for o in run_config.OPTIONS
        if o.dest not in exclude
    ]


def _define_command() -> click.Command:
    params = run_options(exclude=("name", "detach"))
    params += [
        click.Option(
            ["--restart"],
            type=click.Choice(definitions.RESTART_POLICIES),
            default="no",
            show_default=True,
            help="systemd's Restart= for the container's service.",
        ),
        click.Argument(
            ["args"], nargs=-1, type=click.UNPROCESSED, metavar="[ROOTFS|BUNDLE] [-- CMD [ARG]...]"
        ),
    ]

    @click.pass_context
    def callback(ctx: click.Context, restart: str, **values: Any) -> None:
        if "pyctr.name" not in ctx.meta:
            raise click.UsageError("define needs the container's NAME first", ctx)
        values = {**values, "command_only": ctx.meta["pyctr.command_only"]}
        for warning in service.define(ctx.meta["pyctr.name"], restart, values):
            click.echo(f"pyctr: warning: {warning}", err=True)

    return _DefineCommand(
        "define",
        params=params,
        options_metavar="NAME [OPTIONS]",
        callback=callback,
        help="Declare a container, run with `systemctl start pyctr@NAME`; redefining replaces it.",
        context_settings={"allow_interspersed_args": False},
    )


@click.command()
@click.argument("container_name", metavar="NAME")
def undefine(container_name: str) -> None:
    """Stop a declared container and remove its definition and drop-in."""
    service.undefine(names.validate(container_name))


@click.command()
def defined() -> None:
    """List the declared containers and their services' states."""
    bus = Systemd()
    rows = [("NAME", "SERVICE", "STATE")]
    for name in definitions.defined():
        state = bus.unit_property(names.defined_unit(name), UNIT, "ActiveState") or "inactive"
        rows.append((name, names.defined_unit(name), str(state)))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for r in rows:
        click.echo(f"{r[0].ljust(widths[0])}   {r[1].ljust(widths[1])}   {r[2]}")


@click.command("service-start", hidden=True)
@click.argument("container_name", metavar="NAME")
def service_start(container_name: str) -> int:
    """The ExecStart of pyctr@NAME.service."""
    return service.start_defined(names.validate(container_name))


@click.command("service-run", hidden=True)
@click.argument("values")
def service_run(values: str) -> int:
    """The ExecStart of `pyctr run -d`'s service."""
    return service.start_detached(values)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("-n", "--lines", type=int, help="Only the last N lines.")
@click.argument("container_name", metavar="NAME")
def logs(container_name: str, follow: bool, lines: int | None) -> None:
    """A container's output, from the journal (defined and detached containers)."""
    unit = service.unit_of(Systemd(), container_name)
    argv = ["journalctl", "--unit", unit, "--output", "cat", "--no-pager"]
    argv += ["--follow"] if follow else []
    argv += ["--lines", str(lines)] if lines is not None else []
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@click.command()
@click.argument("container_name", metavar="NAME")
def stop(container_name: str) -> None:
    """Stop a detached or defined container (SIGTERM, then SIGKILL after 10s)."""
    bus = Systemd()
    service.stop(bus, service.unit_of(bus, container_name))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Stop it first if it runs.")
@click.argument("container_name", metavar="NAME")
def rm(container_name: str, force: bool) -> None:
    """Remove a stopped detached container (its service and its failed state)."""
    service.remove(names.validate(container_name), force)


@click.command("stats")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_names", nargs=-1, metavar="[NAME]...")
def stats_command(fmt: str, container_names: tuple[str, ...]) -> None:
    """CPU time, memory and tasks of running containers, as systemd accounts them."""
    rows = stats.collect(Systemd(), list(container_names))
    missing = set(container_names) - {str(r["name"]) for r in rows}
    if missing:
        raise PyctrError(f"no running container {', '.join(sorted(missing))}")
    click.echo(json.dumps(rows) if fmt == "json" else stats.table(rows), nl=fmt == "json")


COMMANDS = (_define_command(), undefine, defined, service_start, service_run, logs, stop, rm, stats_command)
