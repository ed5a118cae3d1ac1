"""The `pyctr` command.

click (cli.app) is the command line: every verb, help, completion, usage
errors. A plain `pyctr run` and runc's hot verbs skip importing it (see cli.run
and cli.verbs). Errors end here:
a PyctrError or a usage error is one line on stderr and exit status 125, as
podman reports its own failures; `pyctr --debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

from pyctr_systemd import log
from pyctr_systemd.errors import PyctrError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def fail(message: str, code: int) -> None:
    print(f"pyctr: {one_line(message)}", file=sys.stderr)
    sys.exit(code)


def one_line(message: str) -> str:
    """An error as one line, whatever the user's input in it: a newline in a name or a
    path is shown as \\n."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def main() -> None:
    args = sys.argv[1:]
    command = _fast_command(args)
    if command is None:
        from pyctr_systemd.cli.app import invoke

        sys.exit(invoke(args))
    try:
        code = command()
    except PyctrError as e:
        log.error(str(e))
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    # Nothing is left to clean up; skipping interpreter teardown saves ~2 ms.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fast_command(args: list[str]) -> Callable[[], int] | None:
    """A plain `pyctr run` or a hot OCI verb, read without click; None for click to read.
    Only `run` imports what a container's launch needs: runc's other verbs skip it."""
    if args[:1] == ["run"]:
        from pyctr_systemd.cli import run

        if not run.is_bundle_run(args[1:]):
            values = run.parse(args[1:])
            if values is None:
                return None
            plain: dict[str, Any] = values
            return lambda: run.execute(plain)
    from pyctr_systemd.cli import verbs

    return verbs.parse(args)
