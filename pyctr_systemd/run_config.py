"""A `pyctr run`: its options, and the container they describe.

The options are declared once, in OPTIONS: the command line reads them (cli.run,
and click through cli.app), `pyctr define` stores their values (definitions),
and a service started by systemd builds its container from those values with
the same function (service). What a run means, its checks and defaults, is here;
parsing and printing are the CLI's.
"""

from __future__ import annotations

import os

from pyctr_systemd import names, rootfs, seccomp_profile
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.init.launch import DEFAULT_CAPABILITIES, DEFAULT_PATH, LaunchSpec
from pyctr_systemd.limits import Limits, parse_size

DEFAULT_COMMAND = ("/bin/sh",)


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
    Option("--pids-limit", type=int, help="Maximum number of tasks (TasksMax); -1 for no limit."),
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


class RunConfig:
    __slots__ = ("name", "launch", "limits", "machine", "named")

    def __init__(
        self,
        name: str,
        launch: LaunchSpec,
        limits: Limits,
        machine: bool = False,
        named: bool = True,
    ) -> None:
        self.name, self.launch, self.limits = name, launch, limits
        self.machine = machine  # register with systemd-machined
        self.named = named  # the name is the user's, not a fresh random one


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


def build(
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
) -> RunConfig:
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
        # Only the pseudo devices the launcher creates (null, zero, full, random, urandom,
        # tty, ptmx and pts): a mknod'ed disk stays unusable.
        device_policy="closed",
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
    return RunConfig(name=name, launch=spec, limits=limits, machine=machine, named=named)


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
