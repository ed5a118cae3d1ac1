"""`pyctr run` argument handling: the start path's parser against click's."""

import os
import subprocess
from pathlib import Path

import click
import pytest

from pyctr_systemd import run_config
from pyctr_systemd.cli import app, run
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.seccomp_profile import SyscallFilter, SyscallRule
from tests import cli

PLAIN = [
    [],
    ["--", "echo", "hi"],
    ["/r"],
    ["/r", "--", "echo", "-n", "x"],
    ["/r", "echo", "--name"],
    ["--name", "x", "--memory", "64M", "--", "sh"],
    ["-e", "A=1", "-e", "B", "--env=C=3", "/r"],
    ["--no-pivot", "-w", "/tmp", "--cpus", "0.5", "--pids-limit", "10", "/r", "sh"],
    ["--cpu-shares", "512", "--cpu-weight", "7", "--", "--"],
    ["--memory-swap", "0", "-", "x"],
    ["--name=a=b", "--workdir=/w", "--cwd", "/v"],
    ["--hostname", "h", "--name", "first", "--name", "second"],
    ["--cpus", "1e-1", "--pids-limit", " 7"],
    ["--security-opt", "seccomp=unconfined", "--security-opt=no-new-privileges", "/r"],
]
LEFT_TO_CLICK = [
    ["--help"],
    ["--bogus"],
    ["-eA=1"],
    ["--no-pivot=1"],
    ["--cpus", "half"],
    ["--pids-limit", "1.5"],
    ["--hostname", "-x"],
    ["--name"],
    ["-w=/x"],
    ["--nam", "x"],
]


def click_values(args: list[str]) -> dict[str, object]:
    command = app.cli.commands["run"]
    ctx = command.make_context("run", list(args))
    return {**ctx.params, "command_only": ctx.meta["pyctr.command_only"]}


@pytest.mark.parametrize("args", PLAIN)
def test_start_path_parses_like_click(args: list[str]) -> None:
    assert run.parse(args) == click_values(args)


@pytest.mark.parametrize("args", LEFT_TO_CLICK)
def test_start_path_leaves_the_rest_to_click(args: list[str]) -> None:
    assert run.parse(args) is None


@pytest.mark.parametrize(
    ("args", "rootfs", "command"),
    [
        ([], None, ()),
        (["--", "sh", "-c", "x"], None, ("sh", "-c", "x")),
        (["/r"], "/r", ()),
        (["/r", "--", "sh"], "/r", ("sh",)),
        (["/r", "sh", "--", "x"], "/r", ("sh", "--", "x")),
        (["--name", "--", "/r"], "/r", ()),  # "--" is the name here
        (["/r", "--", "--"], "/r", ("--",)),
    ],
)
def test_rootfs_and_command(args: list[str], rootfs: str | None, command: tuple[str, ...]) -> None:
    values = click_values(args)
    assert run_config.split_args(values["command_only"], values["args"]) == (rootfs, command)  # type: ignore[arg-type]


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    env = run_config.environment(("A=1", "FROM_HOST", "NOT_SET", "PATH=/x", "E="), "box")
    assert env == (
        "PATH=/x",
        "HOME=/root",
        "HOSTNAME=box",
        "container=pyctr",
        "TERM=xterm-256color",
        "A=1",
        "FROM_HOST=yes",
        "E=",
    )


def test_environment_rejects_empty_key() -> None:
    with pytest.raises(Exception, match="KEY=VALUE"):
        run_config.environment(("=x",), "box")


def test_click_builds_help_from_the_same_table() -> None:
    help_text = app.cli.commands["run"].get_help(click.Context(app.cli.commands["run"], info_name="run"))
    for option in run_config.OPTIONS:
        for name in option.names:
            assert name in help_text


def pyctr(*args: str) -> subprocess.CompletedProcess[str]:
    # Bad input must fail before the bus; if it ever got there, it finds none.
    return cli.pyctr(*args, env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--bogus"], "pyctr: No such option: --bogus"),
        (["run", "--cpus", "half"], "pyctr: Invalid value for '--cpus'"),
        (["run", "--memory", "12Q"], "pyctr: invalid size for --memory: '12Q'"),
        (["run", "--name", "a b"], "pyctr: invalid container name 'a b'"),
        (["run", "--cpu-shares", "1"], "pyctr: invalid value for --cpu-shares: 1"),
        (["run", "--memory-swap", "lots"], "pyctr: invalid size for --memory-swap: 'lots'"),
        (["run", "--pids-limit", "many"], "pyctr: Invalid value for '--pids-limit'"),
        (["run", "--cpus", "0"], "pyctr: invalid value for --cpus: 0"),
        (["run", "-w", "relative"], "pyctr: invalid --workdir 'relative'"),
        (["run", "--security-opt", "apparmor=x"], "pyctr: invalid --security-opt 'apparmor=x': use seccomp="),
        (
            ["run", "--security-opt", "seccomp=/no/such"],
            "pyctr: invalid --security-opt seccomp=/no/such: No such",
        ),
        (["run", "--security-opt", "no-new-privileges=maybe"], "pyctr: invalid --security-opt 'no-new-priv"),
        (["nosuchverb"], "pyctr: No such command 'nosuchverb'"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = pyctr(*args)
    assert result.returncode == 125
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(message)


def test_help_and_version() -> None:
    assert pyctr("run", "--help").stdout.startswith("Usage: pyctr run [OPTIONS] [ROOTFS] [-- CMD [ARG]...]")
    assert pyctr("--version").stdout == "pyctr, version 0.1.0\n"


def test_security_opts(tmp_path: Path) -> None:
    default, nnp = run_config.security(())
    assert default is not None and default.default_action == "SCMP_ACT_ERRNO" and not nnp
    assert run_config.security(("seccomp=unconfined", "no-new-privileges")) == (None, True)
    assert run_config.security(("no-new-privileges=true", "no-new-privileges=false"))[1] is False
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], '
                       '"action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}')  # fmt: skip
    colon = tmp_path / "a:b.json"  # a path may hold either separator
    colon.write_text(profile.read_text())
    for option in (f"seccomp={profile}", f"seccomp:{profile}", f"seccomp={colon}"):  # docker takes both
        found, _ = run_config.security((option,))
        assert found == SyscallFilter(
            "SCMP_ACT_ALLOW", None, (), (), (SyscallRule(("getppid",), "SCMP_ACT_ERRNO", 122),)
        )
    profile.write_text('{"defaultAction": "SCMP_ACT_NOPE"}')
    with pytest.raises(InvalidArgument) as e:
        run_config.security((f"seccomp={profile}",))
    assert str(e.value).startswith(f"{profile}: defaultAction: ")


def test_security_opts_mean_the_same_from_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A definition and `run -d` start from systemd's working directory.
    monkeypatch.chdir(tmp_path)
    assert run_config.absolute_security_opts(
        ("seccomp=p.json", "seccomp=unconfined", "no-new-privileges")
    ) == [
        f"seccomp={tmp_path}/p.json",
        "seccomp=unconfined",
        "no-new-privileges",
    ]
