"""Exit statuses and signals travel from the payload to pyctr's caller."""

from __future__ import annotations

import signal

import pytest

from tests.cli import pyctr, start_pyctr
from tests.integration.conftest import wait_for_line


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_exit_code_propagates(code: int) -> None:
    result = pyctr("run", "--", "sh", "-c", f"exit {code}")
    assert result.returncode == code
    assert result.stderr == ""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 43), (signal.SIGHUP, 44), (signal.SIGINT, 45)])
def test_signals_are_forwarded(sig: signal.Signals, code: int) -> None:
    script = f'trap "exit {code}" {sig.name.removeprefix("SIG")}; echo ready; while :; do sleep 0.05; done'
    container = start_pyctr("run", "--", "sh", "-c", script)
    wait_for_line(container, "ready")
    container.send_signal(sig)
    container.wait(timeout=30)
    assert container.returncode == code


def test_signal_death_inside_is_reported_as_128_plus_n() -> None:
    # PID 1 ignores signals it has no handler for (SIGKILL from outside is in
    # test_oom); a child killed by SIGUSR1 makes the shell exit with 128+10.
    result = pyctr("run", "--", "sh", "-c", "sh -c 'kill -USR1 $$'; exit $?")
    assert result.returncode == 128 + signal.SIGUSR1


def test_command_not_found() -> None:
    result = pyctr("run", "--", "/no/such/command")
    assert result.returncode == 127
    # runc's words (Go's exec.LookPath), which docker and podman turn into 127
    missing = "/no/such/command"
    assert result.stderr == f'pyctr: exec: "{missing}": stat {missing}: no such file or directory\n'


def test_command_not_executable() -> None:
    result = pyctr("run", "--", "/etc/passwd")
    assert result.returncode == 126
    assert result.stderr == 'pyctr: exec: "/etc/passwd": permission denied\n'
