"""The click application: the root group and each verb's command."""

from __future__ import annotations

from typing import Any

import click

from pyctr_systemd import __version__
from pyctr_systemd.cli import fail, run
from pyctr_systemd.errors import PyctrError

_debug = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyctr")
@click.option("--debug", is_flag=True, help="Show a traceback for errors.")
def cli(debug: bool) -> None:
    """A container runtime in which every container is a systemd unit."""
    global _debug
    _debug = debug


class _RunCommand(click.Command):
    """click swallows a "--" right after the options, so `run -- sh` would read
    sh as ROOTFS; note whether that "--" was there."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["pyctr.command_only"] = run.first_word(args) == "--"
        return super().parse_args(ctx, args)


def _run_command() -> click.Command:
    params: list[click.Parameter] = [
        click.Option(
            [*o.names, o.dest],
            type=None if o.flag else o.type,
            multiple=o.multiple,
            is_flag=o.flag,
            default=o.default,
            metavar=o.metavar,
            help=o.help,
        )
        for o in run.OPTIONS
    ]
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


def invoke(args: list[str]) -> int:
    """Run the click application on `args`; return the exit status."""
    try:
        return int(cli.main(args, prog_name="pyctr", standalone_mode=False) or 0)
    except PyctrError as e:
        if _debug:
            raise
        fail(str(e), e.exit_code)
    except click.UsageError as e:
        where = f"{e.ctx.command_path} --help" if e.ctx else "pyctr --help"
        fail(f"{e.format_message()} (see '{where}')", PyctrError.exit_code)
    except click.ClickException as e:
        fail(e.format_message(), PyctrError.exit_code)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    return PyctrError.exit_code
