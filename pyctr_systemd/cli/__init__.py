"""The `pyctr` command.

click (cli.app) is the command line: every verb, help, completion, usage
errors. A plain `pyctr run` skips importing it (see cli.run). Errors end here:
a PyctrError or a usage error is one line on stderr and exit status 125, as
podman reports its own failures; `pyctr --debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys

from pyctr_systemd.cli import run
from pyctr_systemd.errors import PyctrError


def fail(message: str, code: int) -> None:
    print(f"pyctr: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    args = sys.argv[1:]
    plain_run = args[:1] == ["run"] and not run.is_bundle_run(args[1:])
    values = run.parse(args[1:]) if plain_run else None
    if values is None:
        from pyctr_systemd.cli.app import invoke

        sys.exit(invoke(args))
    try:
        code = run.execute(values)
    except PyctrError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    # Nothing is left to clean up; skipping interpreter teardown saves ~2 ms.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
