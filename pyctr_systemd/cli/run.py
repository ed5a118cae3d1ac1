"""pyctr run [OPTIONS] [ROOTFS] [-- CMD [ARG]...]: a container in the foreground.

The options are declared once, in OPTIONS. click builds the command from them
(help, completion, error messages: see cli.app). Importing click costs ~28 ms,
more than half of a whole container start, so the start path first tries
`parse`, which reads plain invocations with the same table and hands anything
else (help, unknown or abbreviated options, option clusters, values that look
like options or do not convert) back to click. tests/unit/test_cli_run.py holds
both parsers to the same results.
"""

from __future__ import annotations

import os

from pyctr_systemd import container, names, rootfs, seccomp_profile
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.init.launch import DEFAULT_CAPABILITIES, DEFAULT_PATH, LaunchSpec
from pyctr_systemd.limits import Limits, parse_size

TYPE_CHECKING = False  # typing costs ~9 ms to import; mypy reads this as True
if TYPE_CHECKING:
    from typing import Any

DEFAULT_COMMAND = ("/bin/sh",)
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


class Option:
    """One option of `run`, as both parsers read it."""

    __slots__ = ("names", "dest", "type", "multiple", "flag", "default", "metavar", "help")

    def __init__(
        self,
        *names: str,
        dest: str = "",
        type: type = str,
        multiple: bool = False,
        flag: bool = False,
        default: object = None,
        metavar: str | None = None,
        help: str = "",
    ) -> None:
        self.names, self.type, self.multiple, self.flag = names, type, multiple, flag
        self.dest = dest or names[-1].lstrip("-").replace("-", "_")
        self.default = () if multiple else False if flag else default
        self.metavar, self.help = metavar, help


OPTIONS = (
    Option("--name", help="Container name (default: a generated id); the unit is pyctr-NAME.scope."),
    Option("--hostname", help="Hostname inside the container (default: the name)."),
    Option(
        "-e",
        "--env",
        multiple=True,
        metavar="KEY[=VALUE]",
        help="Set an environment variable; KEY alone passes the caller's value.",
    ),
    Option(
        "-w",
        "--workdir",
        "--cwd",
        dest="cwd",
        default="/",
        metavar="DIR",
        help="Working directory inside the container (created if missing).",
    ),
    Option("--memory", metavar="SIZE", help="Memory limit (MemoryMax), e.g. 64M."),
    Option("--memory-swap", metavar="SIZE", help="Swap limit (MemorySwapMax); 0 means no swap."),
    Option("--cpu-shares", type=int, help="Relative CPU weight (CPUShares on cgroup v1, CPUWeight on v2)."),
    Option("--cpu-weight", type=int, help="CPU weight 1-10000 (CPUWeight; CPUShares on cgroup v1)."),
    Option("--cpus", type=float, help="CPU time limit in CPUs, e.g. 0.5 (CPUQuota=50%)."),
    Option("--pids-limit", type=int, help="Maximum number of tasks (TasksMax)."),
    Option("--no-pivot", flag=True, help="Enter the rootfs with chroot instead of pivot_root."),
    Option(
        "--security-opt",
        multiple=True,
        metavar="OPT",
        help="seccomp=unconfined, seccomp=FILE (a docker or OCI profile) or no-new-privileges.",
    ),
    Option(
        "--machine",
        flag=True,
        help="Register with systemd-machined, for machinectl (visible to every local user).",
    ),
    Option(
        "-d",
        "--detach",
        flag=True,
        help="Run as the service pyctr-NAME.service, output to the journal (pyctr logs NAME); print NAME.",
    ),
)
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


def split_args(command_only: bool, args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """ROOTFS and CMD from what follows the options."""
    if command_only or not args:
        return None, args
    rest = args[1:]
    return args[0], rest[1:] if rest[:1] == ("--",) else rest


def environment(assignments: tuple[str, ...], hostname: str) -> tuple[str, ...]:
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": hostname, "container": "pyctr"}
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    for item in resolved(assignments):
        key, _, value = item.partition("=")
        env[key] = value
    return tuple(f"{k}={v}" for k, v in env.items())


def resolved(assignments: tuple[str, ...]) -> list[str]:
    """-e values as KEY=VALUE: `-e KEY` passes the caller's value, as in docker
    (and nothing if the caller has none)."""
    result = []
    for item in assignments:
        key, sep, _ = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=VALUE")
        if sep:
            result.append(item)
        elif key in os.environ:
            result.append(f"{key}={os.environ[key]}")
    return result


def config(
    *,
    name: str | None,
    hostname: str | None,
    env: tuple[str, ...],
    cwd: str,
    memory: str | None,
    memory_swap: str | None,
    cpu_shares: int | None,
    cpu_weight: int | None,
    cpus: float | None,
    pids_limit: int | None,
    no_pivot: bool,
    command_only: bool,
    args: tuple[str, ...],
    security_opt: tuple[str, ...] = (),
    detach: bool = False,
    machine: bool = False,
) -> container.RunConfig:
    """The container to run, from the parsed options; raises on bad input."""
    root_arg, command = split_args(command_only, args)
    named = name is not None
    name = names.validate(name) if name is not None else names.generate()
    hostname = hostname if hostname is not None else names.default_hostname(name)
    if not os.path.isabs(cwd):
        raise InvalidArgument(f"invalid --workdir {cwd!r}: must be an absolute path")
    limits = Limits(
        memory=parse_size(memory, "--memory") if memory is not None else None,
        memory_swap=parse_size(memory_swap, "--memory-swap", unlimited_ok=True)
        if memory_swap is not None
        else None,
        cpu_shares=cpu_shares,
        cpu_weight=cpu_weight,
        cpus=cpus,
        pids=pids_limit,
    )
    seccomp, no_new_privileges = security(security_opt)
    spec = LaunchSpec(
        rootfs=rootfs.resolve(root_arg),
        argv=command or DEFAULT_COMMAND,
        env=environment(env, hostname),
        cwd=cwd,
        hostname=hostname,
        pivot=not no_pivot,
        seccomp=seccomp,
        no_new_privileges=no_new_privileges,
        keyring=names.keyring(name),
    )
    return container.RunConfig(name=name, launch=spec, limits=limits, machine=machine, named=named)


SECURITY_OPTS = "seccomp=unconfined, seccomp=FILE or no-new-privileges"


def security(options: tuple[str, ...]) -> tuple[seccomp_profile.SyscallFilter | None, bool]:
    """The seccomp filter (None for none) and no_new_privs that --security-opt asks for; by
    default pyctr's own profile, like docker's, and no no_new_privs."""
    seccomp: seccomp_profile.SyscallFilter | None = seccomp_profile.default_filter(
        DEFAULT_CAPABILITIES, os.uname().machine
    )
    no_new_privileges = False
    for option in options:
        key, value = _split_option(option)
        if key == "seccomp" and value == "unconfined":
            seccomp = None
        elif key == "seccomp" and value:
            seccomp = _profile(value)
        elif key == "no-new-privileges" and value in ("", "true", "false"):
            no_new_privileges = value != "false"
        else:
            raise InvalidArgument(f"invalid --security-opt {option!r}: use {SECURITY_OPTS}")
    return seccomp, no_new_privileges


def _split_option(option: str) -> tuple[str, str]:
    """KEY=VALUE, or docker's older KEY:VALUE: at whichever comes first (a path may hold either)."""
    at = min((i for i in (option.find("="), option.find(":")) if i >= 0), default=len(option))
    return option[:at], option[at + 1 :]


def _profile(path: str) -> seccomp_profile.SyscallFilter:
    from pyctr_systemd import spec

    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise InvalidArgument(f"invalid --security-opt seccomp={path}: {e.strerror}") from None
    host = os.uname()
    return seccomp_profile.parse(
        spec.loads(text, path), path, "", DEFAULT_CAPABILITIES, host.machine, host.release
    )


def absolute_security_opts(options: tuple[str, ...]) -> list[str]:
    """--security-opt values that mean the same from another working directory (systemd's)."""
    result = []
    for option in options:
        key, value = _split_option(option)
        if key == "seccomp" and value and value != "unconfined":
            option = f"seccomp={os.path.abspath(value)}"
        result.append(option)
    return result


def execute(values: dict[str, Any]) -> int:
    if values.get("detach"):
        from pyctr_systemd import service

        return service.run_detached(values)
    return container.run(config(**values))
