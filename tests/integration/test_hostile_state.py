"""Planted or altered state under --root: each test performs the attack and fails if it works.

The state names hooks to run and a unit to stop, and a pid to signal: pyctr must use
only state that is root's alone, act only on the unit named for the container, and
signal the recorded pid only while it is the container's (its start time, its unit's
cgroup, which differs between cgroup v1 and v2: this file runs in the v2 lane too).
Markers go to the test's own temporary directory; no file of the host is written over.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctr_systemd import state
from tests.cli import pyctr, start_pyctr
from tests.integration.conftest import STATE_ROOT, Bundle, show, systemctl, wait_for_line
from tests.integration.test_hostile_bundles import NOBODY, refusal
from tests.integration.test_oci_lifecycle import new_id, ok, wait_status

# --- 9. state under --root --------------------------------------------------------------


@pytest.fixture
def victim_unit() -> Iterator[str]:
    """An unrelated running service of the host."""
    name = f"victim-{os.urandom(3).hex()}.service"
    subprocess.run(
        ["systemd-run", "--quiet", "--collect", "--unit", name, "sleep", "300"], check=True, timeout=30
    )
    try:
        assert systemctl("is-active", name, check=False).stdout.strip() == "active"
        yield name
    finally:
        systemctl("stop", name, check=False)
        systemctl("reset-failed", name, check=False)


@pytest.fixture
def victim_process() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process of the host, in no unit of pyctr's."""
    victim = subprocess.Popen(["sleep", "300"])
    try:
        yield victim
    finally:
        victim.kill()
        victim.wait()


def main_pid(unit: str) -> int:
    return int(show(unit, "MainPID")["MainPID"])


def plant(root: Path, cid: str, unit: str, pid: int, marker: Path) -> Path:
    """A state directory as pyctr writes one (root's, 0711, its file 0600), naming `unit` and
    `pid` (with its real start time), with a poststop hook that touches `marker`; its directory."""
    where = root / cid
    where.mkdir(parents=True)
    record = state.Record(
        id=cid,
        pid=pid,
        start_time=(state.process_start_time(pid) or 0) if pid else 0,
        bundle=str(root),
        rootfs=str(root),
        created=state.now(),
        annotations={},
        unit=unit,
        hooks={"poststart": [], "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]},
        process={"env": [], "cwd": "/", "uid": 0, "gid": 0, "additionalGids": [], "noNewPrivileges": True},
    )
    (where / state.STATE_FILE).write_text(json.dumps(record.as_json()))
    os.chmod(where / state.STATE_FILE, 0o600)
    os.chmod(where, 0o711)
    return where


@pytest.fixture
def planted() -> Iterator[list[Path]]:
    """Planted state directories, removed after the test (the leak check fails on any left)."""
    STATE_ROOT.mkdir(mode=0o711, exist_ok=True)
    found: list[Path] = []
    yield found
    for where in found:
        shutil.rmtree(where, ignore_errors=True)


VERBS = {"kill": ("kill", "{cid}", "KILL"), "delete": ("delete", "--force", "{cid}")}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("how", ["world-writable dir", "dir owned by nobody", "writable file", "open root"])
def test_state_others_could_write_is_refused(
    planted: list[Path], victim_unit: str, tmp_path: Path, how: str, verb: str
) -> None:
    """Attack: a state directory that someone other than root could have written names an
    unrelated service and its main process, and a poststop hook: kill signals that process,
    delete stops the service and runs the hook as root."""
    cid, marker = f"evil-{os.urandom(3).hex()}", tmp_path / "poststop-ran"
    root = tmp_path / "root" if how == "open root" else STATE_ROOT
    where = plant(root, cid, victim_unit, main_pid(victim_unit), marker)
    planted.append(where)
    offending = {
        "world-writable dir": where,
        "dir owned by nobody": where,
        "writable file": where / state.STATE_FILE,
        "open root": root,
    }[how]
    if how == "dir owned by nobody":
        os.chown(where / state.STATE_FILE, NOBODY, NOBODY)
        os.chown(where, NOBODY, NOBODY)
    else:
        os.chmod(offending, 0o1777 if how == "open root" else 0o777 if offending.is_dir() else 0o666)
    args = [a.format(cid=cid) for a in VERBS[verb]]
    done = pyctr(*(["--root", str(root)] if how == "open root" else []), *args)
    active = systemctl("is-active", victim_unit, check=False).stdout.strip()
    assert active == "active", f"pyctr {' '.join(args)} ({how}) ended {victim_unit}: {active}"
    assert not marker.exists(), f"pyctr {' '.join(args)} ({how}) ran the state's poststop hook"
    refusal(done, str(offending))


@pytest.mark.parametrize("verb", ["kill --all", "delete"])
def test_state_naming_a_unit_not_the_containers_is_refused(
    planted: list[Path], victim_unit: str, tmp_path: Path, verb: str
) -> None:
    """Attack: root-owned, private state (as pyctr writes it) whose unit is an unrelated service:
    `kill --all` signals every process of that service; `delete -f` stops it and runs the
    poststop hook. pyctr acts only on the unit it derives from the id (pyctr-ID.scope)."""
    cid, marker = f"evil-{os.urandom(3).hex()}", tmp_path / "poststop-ran"
    pid = main_pid(victim_unit) if verb == "kill --all" else 0  # kill needs a living init; delete none
    planted.append(plant(STATE_ROOT, cid, victim_unit, pid, marker))
    args = ["kill", "--all", cid, "KILL"] if verb == "kill --all" else ["delete", "--force", cid]
    done = pyctr(*args)
    active = systemctl("is-active", victim_unit, check=False).stdout.strip()
    assert active == "active", f"pyctr {' '.join(args)} acted on {victim_unit}: {active}"
    assert not marker.exists(), f"pyctr {' '.join(args)} ran the poststop hook of a foreign unit's state"
    refusal(done)


@pytest.mark.parametrize("verb", VERBS)
def test_state_naming_a_host_process_does_not_signal_it(
    planted: list[Path], victim_process: subprocess.Popen[bytes], tmp_path: Path, verb: str
) -> None:
    """Attack: root-owned, private state naming pyctr-ID.scope (which does not exist) and, as
    its init, a host process with its true start time: kill and delete -f signal that process.
    A pid is the container's only if it is in the container's unit's cgroup."""
    cid = f"evil-{os.urandom(3).hex()}"
    where = plant(STATE_ROOT, cid, f"pyctr-{cid}.scope", victim_process.pid, tmp_path / "poststop-ran")
    planted.append(where)
    assert json.loads((where / state.STATE_FILE).read_text())["start_time"] > 0
    args = [a.format(cid=cid) for a in VERBS[verb]]
    pyctr(*args)
    try:
        ended = victim_process.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        ended = None
    assert ended is None, f"pyctr {' '.join(args)} killed host process {victim_process.pid} ({ended})"


def test_deleting_a_stopped_container_spares_a_unit_that_took_its_name(oci_bundle: Bundle) -> None:
    """The container's unit is pyctr-ID.scope; once it is gone, `pyctr run --name ID` may take
    that name. `pyctr delete ID` must stop only the unit it made (its InvocationID)."""
    cid = new_id()
    oci_bundle.write("true")
    ok("create", "--bundle", str(oci_bundle.path), cid)
    ok("start", cid)
    wait_status(cid, "stopped")
    newcomer = start_pyctr("run", "--name", cid, "--", "sh", "-c", "echo up; read x; exit 0")
    try:
        wait_for_line(newcomer, "up")
        ok("delete", cid)
        assert systemctl("is-active", f"pyctr-{cid}.scope", check=False).stdout.strip() == "active"
        assert not (STATE_ROOT / cid).exists()
    finally:
        assert newcomer.stdin is not None
        newcomer.stdin.close()  # its `read` ends, and the container with it
        assert newcomer.wait(timeout=30) == 0
