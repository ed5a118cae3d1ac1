"""runc's hot verbs without click: what podman calls for every container.

create, start, run (of a bundle), state, kill and delete run once or more per
container, and importing click costs ~25 ms each time, more than runc takes
for a whole command. `parse` reads plain invocations of these verbs (runc's
global options, the verb's own options, its arguments) and hands anything else
(help, unknown or abbreviated options, option clusters) back to click, which
holds the same commands (cli.oci, built on the functions here).
tests/unit/test_cli_verbs.py holds both to the same results.
"""

from __future__ import annotations

import os

from pyctr_systemd import log
from pyctr_systemd.state import DEFAULT_ROOT, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyctr_systemd.oci.create import CreateOptions


class Globals:
    """runc's global options."""

    __slots__ = ("root", "systemd_cgroup")

    def __init__(self, root: str = DEFAULT_ROOT, systemd_cgroup: bool = False) -> None:
        self.root, self.systemd_cgroup = root, systemd_cgroup

    @property
    def store(self) -> Store:
        return Store(self.root)


# Each verb imports only its own module: a hot command loads no other verb's code.


def create_options(
    g: Globals, bundle: str, pid_file: str | None, console_socket: str | None, no_pivot: bool,
    no_new_keyring: bool,
) -> CreateOptions:  # fmt: skip
    from pyctr_systemd.oci.create import CreateOptions

    return CreateOptions(
        bundle=bundle,
        pid_file=os.path.abspath(pid_file) if pid_file else "",
        console_socket=os.path.abspath(console_socket) if console_socket else "",
        no_pivot=no_pivot,
        systemd_cgroup=g.systemd_cgroup,
        no_new_keyring=no_new_keyring,
    )


def create(
    g: Globals, container_id: str, bundle: str = ".", pid_file: str | None = None,
    console_socket: str | None = None, no_pivot: bool = False, no_new_keyring: bool = False,
) -> int:  # fmt: skip
    from pyctr_systemd.oci import create as oci_create

    opts = create_options(g, bundle, pid_file, console_socket, no_pivot, no_new_keyring)
    oci_create.create(g.store, container_id, opts)
    return 0


def run(
    g: Globals, container_id: str, bundle: str = ".", pid_file: str | None = None,
    console_socket: str | None = None, no_pivot: bool = False, detach: bool = False,
    no_new_keyring: bool = False,
) -> int:  # fmt: skip
    from pyctr_systemd.oci import run as oci_run

    opts = create_options(g, bundle, pid_file, console_socket, no_pivot, no_new_keyring)
    return oci_run.run(g.store, container_id, opts, detach)


def start(g: Globals, container_id: str) -> int:
    from pyctr_systemd.oci import start as oci_start

    oci_start.start(g.store, container_id)
    return 0


def state(g: Globals, container_id: str) -> int:
    import json  # only here: its import costs ~6 ms (re, enum), which the other verbs skip

    from pyctr_systemd.oci import state as oci_state

    print(json.dumps(oci_state.state(g.store, container_id), indent=2))
    return 0


def kill(g: Globals, container_id: str, signal: str = "SIGTERM", all_processes: bool = False) -> int:
    from pyctr_systemd.oci import kill as oci_kill

    oci_kill.kill(g.store, container_id, oci_kill.parse_signal(signal), all_processes)
    return 0


def delete(g: Globals, container_id: str, force: bool = False) -> int:
    from pyctr_systemd.oci import delete as oci_delete

    oci_delete.delete(g.store, container_id, force)
    return 0


# --- the fast path -------------------------------------------------------------------

# Options with a value, and flags: name -> keyword of the function.
_GLOBAL_VALUES = {"--root": "root", "--log": "log", "--log-format": "log_format"}
_GLOBAL_FLAGS = {"--systemd-cgroup": "systemd_cgroup"}
_CREATE_VALUES = {
    "-b": "bundle",
    "--bundle": "bundle",
    "--pid-file": "pid_file",
    "--console-socket": "console_socket",
}
_CREATE_FLAGS = {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring"}
# verb -> (options with values, flags, names of the positional arguments, how many are required);
# the function of the same name does the verb.
_VERBS: dict[str, tuple[dict[str, str], dict[str, str], tuple[str, ...], int]] = {
    "create": (_CREATE_VALUES, _CREATE_FLAGS, ("container_id",), 1),
    "run": (_CREATE_VALUES, {**_CREATE_FLAGS, "-d": "detach", "--detach": "detach"}, ("container_id",), 1),
    "start": ({}, {}, ("container_id",), 1),
    "state": ({}, {}, ("container_id",), 1),
    "kill": ({}, {"-a": "all_processes", "--all": "all_processes"}, ("container_id", "signal"), 1),
    "delete": ({}, {"-f": "force", "--force": "force"}, ("container_id",), 1),
}


def _options(
    args: list[str], values: dict[str, str], flags: dict[str, str], into: dict[str, object]
) -> int | None:
    """Read options from the front of args into `into`; the index after them, or None."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            return i + 1
        name, eq, inline = args[i].partition("=")
        if name in flags and not eq:
            if flags[name]:
                into[flags[name]] = True
        elif name in values and (not eq or name.startswith("--")):
            if eq:
                into[values[name]] = inline
            elif i + 1 < len(args):
                i += 1
                into[values[name]] = args[i]
            else:
                return None
        else:
            return None
        i += 1
    return i


def read(args: list[str]) -> tuple[str, dict[str, object], dict[str, object]] | None:
    """(verb, global options, the verb's keyword arguments) of a plain invocation, or None."""
    g: dict[str, object] = {}
    at = _options(args, _GLOBAL_VALUES, _GLOBAL_FLAGS, g)
    if at is None or at >= len(args) or args[at] not in _VERBS:
        return None
    verb, rest = args[at], args[at + 1 :]
    if verb == "run":
        from pyctr_systemd.cli.run import is_bundle_run

        if not is_bundle_run(rest):
            return None
    values, flags, positional, required = _VERBS[verb]
    kwargs: dict[str, object] = {}
    end = _options(rest, values, flags, kwargs)
    if end is None or g.get("log_format", "text") not in ("text", "json"):
        return None
    words = rest[end:]
    if not required <= len(words) <= len(positional) or any(w.startswith("-") for w in words):
        return None
    kwargs.update(zip(positional, words, strict=False))
    return verb, g, kwargs


def parse(args: list[str]) -> Callable[[], int] | None:
    """The command for a plain invocation of a hot verb, or None to let click parse `args`."""
    found = read(args)
    if found is None:
        return None
    verb, g, kwargs = found
    function: Callable[..., int] = globals()[verb]

    def command() -> int:
        log.configure(str(g.get("log", "")), str(g.get("log_format", "text")))
        return function(Globals(str(g.get("root", DEFAULT_ROOT)), bool(g.get("systemd_cgroup"))), **kwargs)

    return command
