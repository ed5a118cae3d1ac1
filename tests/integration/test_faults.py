"""pyctr killed at any moment, and state damaged: what is left, the next command finds
and removes (`delete -f ID`, `pyctr gc`, or a run of the same name). Each sweep of kill
delays spans a whole create, and checks that some kill landed in the window where the
unit exists and the state does not yet."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyctr_systemd import cgroups
from tests.cli import CHECKOUT, pyctr
from tests.integration.conftest import STATE_ROOT, Bundle, systemctl
from tests.integration.test_oci_lifecycle import new_id, ok

STEPS, SWEEPS = 16, 4


def active(unit: str) -> bool:
    return systemctl("is-active", unit, check=False).stdout.strip() in ("active", "activating")


def processes_of(unit: str) -> list[int]:
    group = systemctl("show", unit, "-p", "ControlGroup", "--value", check=False).stdout.strip()
    return cgroups.procs(group) if group else []


def killed_after(delay: float, *args: str) -> None:
    """`pyctr ARGS`, SIGKILLed `delay` seconds in (or left to end, if it ends first)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pyctr_systemd", *args],
        cwd=CHECKOUT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    process.kill()
    process.wait(timeout=30)


def delays(whole: float, landed: Callable[[], bool]) -> Iterator[float]:
    """Kill delays spanning `whole` seconds, STEPS to a sweep; sweeps shifted by a part of
    a step follow, up to SWEEPS, until some kill `landed` in the window sought."""
    for sweep in range(SWEEPS):
        for step in range(STEPS):
            yield whole * (step + sweep / SWEEPS) / STEPS
        if landed():
            return


def duration(*args: str) -> float:
    start = time.monotonic()
    assert pyctr(*args).returncode == 0
    return time.monotonic() - start


@pytest.fixture
def sleeper(oci_bundle: Bundle) -> Iterator[Bundle]:
    oci_bundle.write("sleep", "100")
    yield oci_bundle


def test_a_create_killed_at_any_moment_is_removed_by_delete_force_or_gc(sleeper: Bundle) -> None:
    """Killed after its unit exists but before its state does, a create left a unit pyctr
    could not see (delete -f returned 0 and left it) and a launcher waiting for a start."""
    bundle = str(sleeper.path)
    probe = new_id()
    whole = duration("create", "--bundle", bundle, probe)
    ok("delete", "--force", probe)
    in_window: list[str] = []  # the kills that landed there
    for i, delay in enumerate(delays(whole, lambda: bool(in_window))):
        cid = new_id()
        killed_after(delay, "create", "--bundle", bundle, cid)
        unit = f"pyctr-{cid}.scope"
        if active(unit) and not (STATE_ROOT / cid / "state.json").exists():
            in_window.append(cid)
        unfinished = (STATE_ROOT / cid).exists() and not (STATE_ROOT / cid / "state.json").exists()
        if i % 2 and unfinished:
            assert ok("gc").startswith(f"{cid}: removed"), f"gc after a kill {delay * 1000:.0f} ms in"
        ok("delete", "--force", cid)  # a create that ended is a container: gc leaves it
        assert not active(unit), f"{unit} is left after a kill {delay * 1000:.0f} ms in"
        assert not (STATE_ROOT / cid).exists()
    assert in_window, "no kill landed between the unit made and the state saved"


def test_a_named_run_killed_while_starting_leaves_the_name_free() -> None:
    """A scope whose launcher died before systemd saw it run stays active and empty on
    cgroup v1: the next run of that name takes it over. One whose payload runs is a
    container, and keeps its name."""
    assert pyctr("run", "--", "true").returncode == 0  # the default rootfs, built once
    whole = duration("run", "--name", new_id(), "--", "true")
    empty: list[str] = []  # the scopes left active with no process
    # ... and one kill well after the payload started: a container whose pyctr is gone
    for delay in itertools.chain(delays(whole, lambda: bool(empty)), [whole * 2]):
        name = new_id()
        unit = f"pyctr-{name}.scope"
        killed_after(delay, "run", "--name", name, "--", "sleep", "100")
        time.sleep(0.2)  # what systemd would notice by itself, it has
        running = processes_of(unit)
        if active(unit) and not running:
            empty.append(unit)
        again = pyctr("run", "--name", name, "--", "true")
        if running:
            assert again.returncode == 125 and "already in use" in again.stderr, again
            systemctl("kill", "--signal=KILL", unit)  # PID 1 of its pid namespace ignores SIGTERM
            systemctl("stop", unit, check=False)  # gone already, as a rule
        else:
            assert again.returncode == 0, f"{again.stderr} after a kill {delay * 1000:.0f} ms in"
    assert empty, "no kill left an active scope with no process"
    assert running, f"the payload killed {whole * 2000:.0f} ms in was not running"
    # The groups of the cgroup v1 hierarchies systemd leaves alone, which the killed pyctr
    # would have removed at the end: gc removes them once they are a moment old.
    time.sleep(2.1)
    removed = ok("gc")
    assert cgroups.is_unified() or f"/pyctr.slice/{unit}\n" in removed, removed


def test_damaged_state_is_one_line_and_delete_force_removes_the_container(sleeper: Bundle) -> None:
    cid, other = new_id(), new_id()
    for each in (cid, other):
        ok("run", "-d", "--bundle", str(sleeper.path), each)
    try:
        (STATE_ROOT / cid / "state.json").write_text(json.dumps({"id": cid, "pid": "1"}))
        said = f"state of container {cid} is damaged ({STATE_ROOT / cid / 'state.json'}: pid is not int)"
        done = pyctr("state", cid)
        assert (done.returncode, done.stderr) == (125, f"pyctr: {said}: `delete -f` removes it\n")
        listed = pyctr("list", "-q")
        assert (listed.stdout, listed.stderr) == (
            f"{other}\n",
            f"pyctr: warning: {said}: `delete -f` removes it\n",
        )
        ok("delete", "--force", cid)
        assert not active(f"pyctr-{cid}.scope") and not (STATE_ROOT / cid).exists()
    finally:
        ok("delete", "--force", other)
        pyctr("delete", "--force", cid)


def test_gc_leaves_a_create_in_progress_alone(sleeper: Bundle) -> None:
    """A create's directory is locked while it runs: gc and delete -f wait for it or
    leave it, never take a container being made."""
    cid = new_id()
    hook = sleeper.path / "hook.sh"
    hook.write_text("#!/bin/sh\nsleep 2\n")
    hook.chmod(0o755)
    sleeper.config["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    sleeper.write()
    creating = subprocess.Popen(
        [sys.executable, "-m", "pyctr_systemd", "create", "--bundle", str(sleeper.path), cid], cwd=CHECKOUT
    )
    try:
        deadline = time.monotonic() + 10
        while not active(f"pyctr-{cid}.scope"):
            assert time.monotonic() < deadline, "the create did not make its unit"
            time.sleep(0.05)
        assert ok("gc") == ""
        done = pyctr("delete", "--force", cid)
        assert (done.returncode, done.stderr) == (
            125,
            f"pyctr: cannot delete container {cid}: it is being created\n",
        )
        assert creating.wait(timeout=30) == 0
    finally:
        creating.wait(timeout=30)
        ok("delete", "--force", cid)


def test_a_detached_run_that_fails_waiting_for_systemd_leaves_nothing() -> None:
    """`run -d` interrupted (or timed out) while systemd's start job runs: the service it
    asked for must not go on starting, and then running, after pyctr said it failed."""
    name = new_id()
    unit = f"pyctr-{name}.service"
    starting = subprocess.Popen(
        [sys.executable, "-m", "pyctr_systemd", "run", "-d", "--name", name, "--", "sleep", "100"],
        cwd=CHECKOUT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while (state := systemctl("is-active", unit, check=False).stdout.strip()) != "activating":
        assert state in ("inactive", "unknown") and time.monotonic() < deadline, f"{unit} is {state}"
        time.sleep(0.005)
    starting.send_signal(signal.SIGINT)
    out, err = starting.communicate(timeout=60)
    assert (starting.returncode, out, err) == (130, "", "pyctr: interrupted\n")
    time.sleep(0.5)  # what would have started by now, has
    assert systemctl("list-units", "--all", "--no-legend", unit).stdout.strip() == ""


def test_a_foreground_run_outlives_a_restart_of_dbus() -> None:
    """The payload's exit status, not `Connection was disconnected`: pyctr connects again."""
    running = subprocess.Popen(
        [sys.executable, "-m", "pyctr_systemd", "run", "--", "sh", "-c", "echo up; sleep 1; exit 7"],
        cwd=CHECKOUT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert running.stdout is not None and running.stdout.readline() == "up\n"
    systemctl("restart", "dbus.service")
    out, err = running.communicate(timeout=60)
    assert (running.returncode, out, err) == (7, "", "")


def test_stop_and_rm_force_wait_for_the_processes_and_leave_no_group() -> None:
    """Stopping a service whose payload ignores SIGTERM (PID 1 of its pid namespace), systemd
    may call the unit dead while the rest of its namespace is still dying ("remains running
    after unit stopped") and leave its cgroups: stop (then rm) and rm -f wait for the
    processes and remove what systemd left. Twelve at once, half of each, to meet that race."""
    from tests.integration.test_services import journal

    names = [new_id() for _ in range(12)]
    for name in names:
        ok("run", "-d", "--name", name, "--", "sleep", "100")
    verbs = [["stop", name] if i % 2 else ["rm", "-f", name] for i, name in enumerate(names)]
    ending = [
        subprocess.Popen([sys.executable, "-m", "pyctr_systemd", *verb], cwd=CHECKOUT) for verb in verbs
    ]
    assert [p.wait(timeout=60) for p in ending] == [0] * len(names)
    units = [f"pyctr-{name}.service" for name in names]
    for name, unit in zip(names[1::2], units[1::2], strict=True):
        if systemctl("list-units", "--all", "--no-legend", unit).stdout.strip():
            ok("rm", name)  # stopped and failed (killed): loaded until removed
    left = [d for d in Path("/sys/fs/cgroup").glob("*/pyctr.slice/*.service") if d.name in units]
    left += [d for d in Path("/sys/fs/cgroup").glob("pyctr.slice/*.service") if d.name in units]  # v2
    assert left == []
    assert any("remains running after unit stopped" in journal(unit) for unit in units[1::2])
    assert systemctl("list-units", "--all", "--no-legend", *units).stdout.strip() == ""


def test_a_define_that_cannot_be_written_leaves_nothing(tmp_path: Path) -> None:
    """The drop-in's directory full: the definition written just before it is taken back,
    and is not listed."""
    from pyctr_systemd import definitions

    name = new_id()
    full = Path(definitions.dropin_path(name)).parent
    full.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "pyctr-test-full", str(full)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={full}/filler", "bs=4k", "count=2"], capture_output=True)
        done = pyctr("define", name, "--", "true")
        target = definitions.dropin_path(name)
        assert (done.returncode, done.stderr) == (
            125,
            f"pyctr: cannot define {name}: {target}.tmp: No space left on device\n",
        )
        assert name not in ok("defined") and not Path(definitions.path(name)).exists()
    finally:
        subprocess.run(["umount", str(full)], check=True)
        full.rmdir()


@pytest.mark.parametrize("detach", [False, True], ids=["scope", "service"])
def test_a_run_when_run_is_full_names_what_is_full_and_leaves_nothing(detach: bool) -> None:
    """systemd cannot write a transient unit into a full /run/systemd/transient; the unit
    then does not load, and systemd says only "Unit ... not found". pyctr says what is full."""
    from pyctr_systemd.systemd import TRANSIENT_DIR

    name = new_id()
    unit = f"pyctr-{name}.{'service' if detach else 'scope'}"
    made = not Path(TRANSIENT_DIR).exists()  # systemd makes it with its first transient unit
    Path(TRANSIENT_DIR).mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "pyctr-test-full", TRANSIENT_DIR], check=True)
    try:
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={TRANSIENT_DIR}/filler", "bs=4k", "count=2"], capture_output=True
        )
        done = pyctr("run", *(["-d"] if detach else []), "--name", name, "--", "true")
    finally:
        subprocess.run(["umount", TRANSIENT_DIR], check=True)
        if made:
            Path(TRANSIENT_DIR).rmdir()
    assert done.returncode == 125
    assert done.stderr.startswith(f"pyctr: systemd refused to start {unit}: {TRANSIENT_DIR} is full (")
    assert done.stderr.count("\n") == 1
    assert systemctl("list-units", "--all", "--no-legend", unit).stdout.strip() == ""


def test_rm_force_kills_at_once_after_a_daemon_reexec() -> None:
    """docker's rm -f: SIGKILL, no SIGTERM and no grace. Left to systemd's stop, the payload
    got SIGTERM and its 10 s grace only after a daemon-reexec (before it, on cgroup v1,
    systemd killed at once a main process it had not started itself)."""
    from tests.integration.test_services import journal

    name = new_id()
    unit = f"pyctr-{name}.service"
    ok(
        "run",
        "-d",
        "--name",
        name,
        "--",
        "sh",
        "-c",
        "trap 'echo got TERM' TERM; echo up; while :; do sleep 0.1; done",
    )
    deadline = time.monotonic() + 10
    while "up" not in journal(unit) and time.monotonic() < deadline:
        time.sleep(0.05)
    systemctl("daemon-reexec")
    ok("rm", "-f", name)
    assert "up" in journal(unit) and "got TERM" not in journal(unit)
    assert systemctl("list-units", "--all", "--no-legend", unit).stdout.strip() == ""
