"""The click application: the root group, its global options and each verb's command."""

from __future__ import annotations

from typing import Any

import click

from pyctr_systemd import __version__, log
from pyctr_systemd.cli import fail, oci, run, services, verbs
from pyctr_systemd.errors import PyctrError
from pyctr_systemd.state import DEFAULT_ROOT

_debug = False


class _Group(click.Group):
    """`run` is two commands: pyctr's own (ROOTFS, -- CMD) and runc's (a bundle
    and an ID); cli.run.is_bundle_run tells which the arguments are for."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args[:1] == ["run"] and run.is_bundle_run(args[1:]):
            return "run", oci.run_bundle, args[1:]
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyctr")
@click.option("--debug", is_flag=True, help="Show a traceback for errors.")
@click.option("--root", default=DEFAULT_ROOT, show_default=True, help="Directory for the containers' state.")
@click.option("--log", "log_file", default="", help="Write warnings and errors to this file.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="Format of --log.")
@click.option(
    "--systemd-cgroup",
    is_flag=True,
    help="Read linux.cgroupsPath as slice:prefix:name (unit prefix-name.scope in that slice).",
)
@click.pass_context
def cli(
    ctx: click.Context, debug: bool, root: str, log_file: str, log_format: str, systemd_cgroup: bool
) -> None:
    """A container runtime in which every container is a systemd unit."""
    global _debug
    _debug = debug
    log.configure(log_file, log_format)
    ctx.obj = verbs.Globals(root, systemd_cgroup)


class _RunCommand(click.Command):
    """click swallows a "--" right after the options, so `run -- sh` would read
    sh as ROOTFS; note whether that "--" was there."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["pyctr.command_only"] = run.first_word(args) == "--"
        return super().parse_args(ctx, args)


def _run_command() -> click.Command:
    params = services.run_options()
    params.append(
        click.Argument(["args"], nargs=-1, type=click.UNPROCESSED, metavar="[ROOTFS] [-- CMD [ARG]...]")
    )

    @click.pass_context
    def callback(ctx: click.Context, **values: Any) -> int:
        return run.execute({**values, "command_only": ctx.meta["pyctr.command_only"]})

    return _RunCommand(
        "run",
        params=params,
        callback=callback,
        help=run.HELP,
        context_settings={"allow_interspersed_args": False},
    )


cli.add_command(_run_command())
for _command in (*oci.COMMANDS, *services.COMMANDS):
    cli.add_command(_command)


def invoke(args: list[str]) -> int:
    """Run the click application on `args`; return the exit status."""
    try:
        return int(cli.main(args, prog_name="pyctr", standalone_mode=False) or 0)
    except PyctrError as e:
        if _debug:
            raise
        log.error(str(e))
        fail(str(e), e.exit_code)
    except click.UsageError as e:
        where = f"{e.ctx.command_path} --help" if e.ctx else "pyctr --help"
        message = f"{e.format_message()} (see '{where}')"
        log.error(message)
        fail(message, PyctrError.exit_code)
    except click.ClickException as e:
        log.error(e.format_message())
        fail(e.format_message(), PyctrError.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    return PyctrError.exit_code
