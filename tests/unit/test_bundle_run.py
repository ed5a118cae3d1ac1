"""`pyctr run`: runc's form (a bundle and an ID) told from pyctr's own; and kill's signal names."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pyctr_systemd.cli.run import is_bundle_run
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.oci.kill import parse_signal


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "rootfs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rootfs").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- options only runc's run has -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-b", "/bundle", "c1"],
        ["--bundle", "/bundle", "c1"],
        ["--bundle=/bundle", "c1"],
        ["--pid-file", "/run/c1.pid", "c1"],
        ["--pid-file=/run/c1.pid", "c1"],
        ["--console-socket", "/run/sock", "c1"],
        ["--no-new-keyring", "c1"],
        ["--no-pivot", "--pid-file", "/p", "c1"],
    ],
)
@pytest.mark.parametrize("where", ["bundle", "elsewhere"])
def test_runc_only_options_make_a_bundle_run(
    args: list[str], where: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(where)
    assert is_bundle_run(args)


# --- one word in a bundle directory --------------------------------------------------------


def test_one_id_in_a_bundle_is_a_bundle_run(bundle: Path) -> None:
    assert is_bundle_run(["c1"])
    assert is_bundle_run(["--no-pivot", "c1"])


def test_one_id_after_pyctr_options_in_a_bundle_is_a_bundle_run(bundle: Path) -> None:
    assert is_bundle_run(["--memory", "64M", "c1"])


def test_one_id_named_like_an_option_value_is_still_one_word(bundle: Path) -> None:
    # One argument that is not an option or its value: the docstring's "one argument".
    assert is_bundle_run(["--hostname", "web", "web"])


def test_one_id_without_config_json_is_pyctrs_run(elsewhere: Path) -> None:
    assert not is_bundle_run(["c1"])


def test_a_directory_in_a_bundle_is_a_rootfs(bundle: Path) -> None:
    assert not is_bundle_run(["rootfs"])
    assert not is_bundle_run([str(bundle / "rootfs")])


def test_a_command_after_the_word_is_pyctrs_run(bundle: Path) -> None:
    assert not is_bundle_run(["c1", "sh"])
    assert not is_bundle_run(["rootfs", "sh", "-c", "true"])


def test_nothing_is_pyctrs_run(bundle: Path) -> None:
    assert not is_bundle_run([])
    assert not is_bundle_run(["--memory", "64M"])
    assert not is_bundle_run(["--no-pivot"])


def test_double_dash_is_pyctrs_run(bundle: Path) -> None:
    assert not is_bundle_run(["--"])
    assert not is_bundle_run(["--", "sh"])
    assert not is_bundle_run(["--", "ls", "-d", "/"])
    assert not is_bundle_run(["rootfs", "--", "ls", "--detach"])


@pytest.mark.parametrize("where", ["bundle", "elsewhere"])
def test_a_commands_own_options_are_not_runcs(where: str, request: pytest.FixtureRequest) -> None:
    # pyctr run [OPTIONS] [ROOTFS] CMD [ARG]...: the "--" before CMD is optional (run.split_args),
    # so what follows ROOTFS belongs to CMD, not to runc's option table.
    request.getfixturevalue(where)
    assert not is_bundle_run(["rootfs", "ls", "-d", "/"])
    assert not is_bundle_run(["rootfs", "sleep", "--detach"])


# --- kill's signals ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["9", "KILL", "SIGKILL", "kill", "sigkill", "Kill"])
def test_parse_signal_kill(text: str) -> None:
    assert parse_signal(text) == 9


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("15", 15),
        ("TERM", signal.SIGTERM),
        ("SIGHUP", signal.SIGHUP),
        ("usr1", signal.SIGUSR1),
        ("SIGRTMIN", signal.SIGRTMIN),
        ("1", 1),
        (str(signal.NSIG - 1), signal.NSIG - 1),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize(
    "text",
    [
        "0",
        str(signal.NSIG),
        "100",
        "-9",
        "",
        "SIG",
        "FOO",
        "SIGFOO",
        "9x",
        "SIG KILL",
        " 9",
        "SIG_DFL",
        "1.5",
    ],
)
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_signal(text)
    assert str(e.value) == f"invalid signal {text!r}"


def test_detach_alone_is_pyctrs_own_run_outside_a_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert not is_bundle_run(["-d", "--", "sleep", "1"])
    assert not is_bundle_run(["-d", "c1"])  # no ./config.json: c1 is a ROOTFS
    (tmp_path / "config.json").write_text("{}")
    assert is_bundle_run(["-d", "c1"])  # runc run -d c1, inside the bundle
