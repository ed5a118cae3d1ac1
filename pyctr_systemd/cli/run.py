"""pyctr run [OPTIONS] [ROOTFS] [-- CMD [ARG]...]: a container in the foreground.

The options are declared once, in run_config.OPTIONS. click builds the command from them
(help, completion, error messages: see cli.app). Importing click costs ~28 ms,
more than half of a whole container start, so the start path first tries
`parse`, which reads plain invocations with the same table and hands anything
else (help, unknown or abbreviated options, option clusters, values that look
like options or do not convert) back to click. tests/unit/test_cli_run.py holds
both parsers to the same results.
"""

from __future__ import annotations

import os

from pyctr_systemd import container
from pyctr_systemd.run_config import OPTIONS, build

TYPE_CHECKING = False  # typing costs ~9 ms to import; mypy reads this as True
if TYPE_CHECKING:
    from typing import Any

HELP = """Run CMD (default /bin/sh) in a new container, in the foreground.

ROOTFS is a directory (default: a busybox root built on first use). The
container is the systemd unit pyctr-NAME.scope in pyctr.slice; its limits are
properties of that unit. pyctr exits with CMD's status, 128+N if signal N
killed it, 137 after an OOM kill, 126/127 if CMD cannot be run, 125 if pyctr
itself failed.

Given an OCI bundle, run is runc's: `pyctr run [-b BUNDLE] [-d] [--pid-file
FILE] [--console-socket SOCKET] [--no-pivot] ID` creates and starts container
ID from BUNDLE/config.json (BUNDLE defaults to the current directory).
"""


_BY_NAME = {name: option for option in OPTIONS for name in option.names}


def parse(args: list[str]) -> dict[str, Any] | None:
    """The values click would pass to `run`, or None to let click parse `args`."""
    values: dict[str, Any] = {option.dest: option.default for option in OPTIONS}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "--"):
        name, eq, inline = args[i].partition("=")
        option = _BY_NAME.get(name)
        if option is None or (eq and (option.flag or not name.startswith("--"))):
            return None
        if option.flag:
            value: object = True
        else:
            if eq:
                text = inline
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                text = args[i]
            else:
                return None
            try:
                value = option.type(text)
            except ValueError:
                return None
        values[option.dest] = (*values[option.dest], value) if option.multiple else value
        i += 1
    values["command_only"] = args[i : i + 1] == ["--"]
    values["args"] = tuple(args[i + 1 :] if values["command_only"] else args[i:])
    return values


# runc's `run` options that pyctr's own `run` does not have.
_BUNDLE_RUN_OPTIONS = (
    "-b",
    "--bundle",
    "--pid-file",
    "--console-socket",
    "--no-new-keyring",
)


def is_bundle_run(args: list[str]) -> bool:
    """Are these the arguments of runc's `run` (a bundle and an ID) rather than pyctr's?

    Yes with any option only runc's `run` has, or, as in `runc run ID` inside a
    bundle, with one argument that is not a directory while ./config.json exists.
    """
    at = _first_word_at(args)
    if any(arg.partition("=")[0] in _BUNDLE_RUN_OPTIONS for arg in args[:at]):
        return True
    word = args[at] if at < len(args) else "--"
    return word != "--" and at == len(args) - 1 and not os.path.isdir(word) and os.path.exists("config.json")


def _first_word_at(args: list[str]) -> int:
    """Where the first argument that is neither an option nor an option's value is (or len(args))."""
    i = 0
    while i < len(args):
        if args[i] in ("-", "--") or not args[i].startswith("-"):
            return i
        option = _BY_NAME.get(args[i])
        i += 2 if option is not None and not option.flag else 1
    return len(args)


def first_word(args: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value."""
    at = _first_word_at(args)
    return args[at] if at < len(args) else None


def execute(values: dict[str, Any]) -> int:
    if values.get("detach"):
        from pyctr_systemd import service

        return service.run_detached(values)
    return container.run(build(**values))
