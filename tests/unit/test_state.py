"""pyctr_systemd.state: the state directory, and status worked out from the live system."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyctr_systemd import cgroups, state
from pyctr_systemd.errors import ContainerExists, InvalidArgument
from pyctr_systemd.state import (
    DamagedState,
    NoSuchContainer,
    Record,
    Store,
    loads,
    oci_state,
    process_start_time,
)


def record(container_id: str = "c1", pid: int = 1234, start_time: int = 99, **changes: object) -> Record:
    values: dict[str, object] = {
        "id": container_id,
        "pid": pid,
        "start_time": start_time,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-02T03:04:05.000000006Z",
        "annotations": {},
        "unit": f"pyctr-{container_id}.scope",
        "hooks": {"poststart": [], "poststop": [{"path": "/bin/true", "args": [], "env": []}]},
        "process": {"env": ["A=1"], "uid": 0},
    }
    values.update(changes)
    return Record(**values)  # type: ignore[arg-type]


def me(container_id: str = "c1") -> Record:
    pid = os.getpid()
    start = process_start_time(pid)
    assert start is not None
    return record(container_id, pid, start)


@pytest.fixture(autouse=True)
def in_the_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process stands in for a container's init: it is in pyctr-c1.scope, as far as
    state can tell (which cgroup a process is in is the integration tests' to check)."""
    real = cgroups.of_pid

    def of_pid(pid: int | str) -> dict[str, str]:
        if pid == os.getpid():
            return {"name=systemd": "/pyctr.slice/pyctr-c1.scope", "": "/pyctr.slice/pyctr-c1.scope"}
        return real(pid)

    monkeypatch.setattr(cgroups, "of_pid", of_pid)


def gone_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# --- the OCI state ----------------------------------------------------------------------


@pytest.mark.parametrize("status", ["created", "running", "paused"])
def test_oci_state_of_a_living_container(status: str) -> None:
    assert oci_state(record(), status) == {
        "ociVersion": "1.0.2",
        "id": "c1",
        "status": status,
        "pid": 1234,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-02T03:04:05.000000006Z",
        "owner": "",
    }


def test_oci_state_of_a_stopped_container_has_pid_0() -> None:
    assert oci_state(record(), "stopped")["pid"] == 0


def test_oci_state_while_creating_has_the_init_pid() -> None:
    # prestart and createRuntime hooks get this state (oci.create's before_go); they find the
    # container's namespaces by its pid, and runc passes the init pid with status "creating".
    assert oci_state(record(), "creating")["pid"] == 1234


def test_oci_state_while_creating_before_there_is_a_pid() -> None:
    assert oci_state(record(pid=0), "creating")["pid"] == 0


def test_oci_state_with_annotations() -> None:
    s = oci_state(record(annotations={"a": "b"}), "running")
    assert s["annotations"] == {"a": "b"}
    assert list(s) == [
        "ociVersion",
        "id",
        "status",
        "pid",
        "bundle",
        "rootfs",
        "created",
        "owner",
        "annotations",
    ]


def test_record_as_json_round_trips() -> None:
    r = record(annotations={"k": "v"})
    data = r.as_json()
    assert data == {
        "version": 1,
        "id": "c1",
        "pid": 1234,
        "start_time": 99,
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-02T03:04:05.000000006Z",
        "annotations": {"k": "v"},
        "unit": "pyctr-c1.scope",
        "hooks": {"poststart": [], "poststop": [{"path": "/bin/true", "args": [], "env": []}]},
        "process": {"env": ["A=1"], "uid": 0},
        "invocation": "",
        "cgroup": "",
    }
    assert Record.from_json(json.loads(json.dumps(data))).as_json() == data


def test_a_record_from_before_invocation_ids_and_versions_loads() -> None:
    data = record().as_json()
    del data["invocation"], data["version"]
    assert Record.from_json(data).invocation == ""


def test_now_is_rfc3339_with_nanoseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", state.now())


# --- process_start_time -----------------------------------------------------------------


def test_process_start_time_of_this_process() -> None:
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    assert process_start_time(os.getpid()) == int(fields[19])


def test_process_start_time_of_a_process_that_is_gone() -> None:
    assert process_start_time(gone_pid()) is None


def test_process_start_time_of_a_zombie() -> None:
    child = subprocess.Popen(["true"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert process_start_time(child.pid) is None
    finally:
        child.wait()


def test_process_start_time_with_a_paren_in_the_command_name(tmp_path: Path) -> None:
    exe = tmp_path / "a) 1 2 3"
    exe.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(exe), "10"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/comm").read_text() != "a) 1 2 3\n":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with open(f"/proc/{child.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        assert process_start_time(child.pid) == int(fields[19])
    finally:
        child.kill()
        child.wait()


# --- the store ----------------------------------------------------------------------------


def test_reserve_makes_the_directory_and_the_fifo(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "root"))
    path = store.reserve("c1")
    assert path == str(tmp_path / "root" / "c1")
    assert stat.S_ISFIFO(os.stat(store.fifo("c1")).st_mode)
    assert store.fifo("c1") == str(tmp_path / "root" / "c1" / "exec.fifo")


def test_reserve_twice_is_taken(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    with pytest.raises(ContainerExists) as e:
        store.reserve("c1")
    assert str(e.value) == "container with id c1 already exists"


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "-x", "a b"])
def test_ids_are_validated(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Store(str(tmp_path)).dir(bad)


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Store("state").root == str(tmp_path / "state")
    assert Store().root == "/run/pyctr"


def test_save_and_load(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    r = record(annotations={"x": "y"})
    store.save(r)
    assert not os.path.exists(tmp_path / "c1" / "state.json.tmp")
    assert store.load("c1").as_json() == r.as_json()
    r.pid = 77
    store.save(r)
    assert store.load("c1").pid == 77


def test_load_of_an_unknown_container(tmp_path: Path) -> None:
    with pytest.raises(NoSuchContainer) as e:
        Store(str(tmp_path)).load("nope")
    assert str(e.value) == "container nope does not exist"


def test_load_of_a_reserved_but_unsaved_container(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    with pytest.raises(NoSuchContainer):
        store.load("c1")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("[]", "not an object"),
        ('{"id": "c1", "pid": "x"}', "pid is not int"),
        ('{"version": 2}', "state version 2, not 1"),
        ("[" * 100000, "maximum recursion depth exceeded while decoding a JSON array from a unicode string"),
    ],
)
def test_load_of_damaged_state(tmp_path: Path, text: str, why: str) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    (tmp_path / "c1" / "state.json").write_text(text)
    with pytest.raises(DamagedState) as e:
        store.load("c1")
    path = tmp_path / "c1" / "state.json"
    assert str(e.value) == f"state of container c1 is damaged ({path}: {why}): `delete -f` removes it"
    assert store.unfinished() == []  # this process is still creating it
    assert Store(str(tmp_path)).being_created("c1")


def test_a_record_reads_back_with_its_version(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    data: dict[str, object] = {**record().as_json(), "a later field": 1}
    saved = Record.from_json(data)
    store.save(saved)
    assert json.loads((tmp_path / "c1" / "state.json").read_text())["version"] == 1
    assert store.load("c1").as_json() == saved.as_json()


def test_ids_are_the_saved_containers_sorted(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    for cid in ("b", "a", "c"):
        store.reserve(cid)
    store.save(record("c"))
    store.save(record("a"))
    (tmp_path / "stray").mkdir()
    assert store.ids() == ["a", "c"]


def test_ids_without_a_root(tmp_path: Path) -> None:
    assert Store(str(tmp_path / "missing")).ids() == []


def test_remove(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    store.save(record())
    (tmp_path / "c1" / "console.sock").write_text("")
    (tmp_path / "c1" / "state.json.tmp").write_text("")
    store.remove("c1")
    assert not (tmp_path / "c1").exists()
    assert store.ids() == []


def test_remove_is_quiet_when_there_is_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.remove("c1")
    store.reserve("c2")
    store.remove("c2")
    assert os.listdir(tmp_path) == [state.CLAIM_LOCK]


# --- status ---------------------------------------------------------------------------------


def test_status_created_while_the_fifo_is_there(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    r = me()
    store.save(r)
    assert state.alive(r)
    assert store.status(r) == "created"
    assert store.status(r, frozen=True) == "created"


def test_status_running_once_the_fifo_is_gone(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    os.unlink(store.fifo("c1"))
    r = me()
    assert store.status(r) == "running"


def test_status_paused_when_frozen(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    os.unlink(store.fifo("c1"))
    assert store.status(me(), frozen=True) == "paused"


def test_status_stopped_when_the_process_is_gone(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    r = record(pid=gone_pid(), start_time=1)
    assert not state.alive(r)
    assert store.status(r) == "stopped"
    assert store.status(r, frozen=True) == "stopped"


def test_status_stopped_when_the_pid_was_reused(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    r = me()
    r.start_time += 1
    assert store.status(r) == "stopped"


def test_status_stopped_when_the_pid_is_in_another_unit(tmp_path: Path) -> None:
    # A pid with the right start time is still not the container's outside its unit.
    store = Store(str(tmp_path))
    store.reserve("c1")
    r = me()
    r.unit = "pyctr-other.scope"
    assert not state.alive(r)
    assert store.status(r) == "stopped"


def test_status_stopped_without_a_pid(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    assert store.status(record(pid=0, start_time=0)) == "stopped"


# --- state that is not root's alone ------------------------------------------------------------


def saved(tmp_path: Path) -> Store:
    store = Store(str(tmp_path))
    store.reserve("c1")
    store.save(record())
    return store


@pytest.mark.parametrize("where", ["root", "dir", "file"])
def test_state_others_may_write_is_refused(tmp_path: Path, where: str) -> None:
    store = saved(tmp_path)
    path = {"root": tmp_path, "dir": tmp_path / "c1", "file": tmp_path / "c1" / "state.json"}[where]
    path.chmod(path.stat().st_mode | 0o002)
    with pytest.raises(state.UnsafeState) as e:
        store.load("c1")
    assert str(e.value) == (
        f"state {path} is writable by others (mode {stat.S_IMODE(path.stat().st_mode):o}), "
        "not root's alone: refusing to use it"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_state_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    store = saved(tmp_path)
    os.chown(tmp_path / "c1", 65534, 65534)
    with pytest.raises(state.UnsafeState) as e:
        store.load("c1")
    assert (
        str(e.value) == f"state {tmp_path / 'c1'} is owned by uid 65534, not root's alone: refusing to use it"
    )


def test_a_symlinked_state_file_is_refused(tmp_path: Path) -> None:
    store = saved(tmp_path)
    real = tmp_path / "c1" / "real.json"
    (tmp_path / "c1" / "state.json").rename(real)
    (tmp_path / "c1" / "state.json").symlink_to(real)
    with pytest.raises(state.UnsafeState) as e:
        store.load("c1")
    assert "cannot be read" in str(e.value)


@pytest.mark.parametrize("unit", ["victim.service", "pyctr-c2.scope", "sshd.scope", "c1.service"])
def test_state_naming_a_unit_not_the_containers_is_refused(tmp_path: Path, unit: str) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    store.save(record(unit=unit))
    with pytest.raises(state.UnsafeState) as e:
        store.load("c1")
    assert str(e.value) == (
        f"state of container c1 names unit {unit!r}, not one named for the container: refusing to use it"
    )


@pytest.mark.parametrize(
    "group", ["/system.slice/sshd.service", "/pyctr.slice/../pyctr-c1.scope", "pyctr-c1.scope", "/", "//"]
)
def test_state_naming_a_cgroup_not_the_units_is_refused(tmp_path: Path, group: str) -> None:
    """Attack: a state file pointing delete's rmdir or update's cpuset at another's group."""
    store = Store(str(tmp_path))
    store.reserve("c1")
    store.save(record(cgroup=group))
    with pytest.raises(state.UnsafeState, match="names cgroup"):
        store.load("c1")


def test_state_with_the_units_cgroup_loads(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.reserve("c1")
    store.save(record(cgroup="/pyctr.slice/pyctr-c1.scope"))
    assert store.load("c1").cgroup == "/pyctr.slice/pyctr-c1.scope"


@pytest.mark.parametrize(
    ("unit", "ok"),
    [
        ("pyctr-c1.scope", True),
        ("libpod-c1.scope", True),
        ("c1.scope", True),
        ("xc1.scope", False),
        ("pyctr-c1.service", False),
    ],
)
def test_units_named_for_a_container(unit: str, ok: bool) -> None:
    assert state.named_for(unit, "c1") is ok


def test_the_exec_fifo_is_written_by_anyone_read_by_root(tmp_path: Path) -> None:
    # The init opens it after taking the payload's identity; only a reader starts it.
    store = Store(str(tmp_path))
    old = os.umask(0o077)
    try:
        store.reserve("c1")
    finally:
        os.umask(old)
    st = os.stat(store.fifo("c1"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.geteuid(), 0o622)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, database=None)
@given(json_values, st.sampled_from(["", " ", "\n", "\t \r\n"]))
def test_state_text_reads_as_json_reads_it(value: object, space: str) -> None:
    text = space + json.dumps(value) + space
    assert loads(text) == json.loads(text)


@settings(max_examples=300, database=None)
@given(st.text(max_size=30))
def test_text_json_refuses_is_refused(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            loads(text)
    else:
        assert loads(text) == expected or expected != expected  # NaN is not itself


def test_constants_and_extra_data() -> None:
    assert loads("[NaN, Infinity, -Infinity]")[1:] == [float("inf"), float("-inf")]  # type: ignore[index]
    for bad in ("", "{", '{"a": 1} x', "[1,]", "'a'"):
        with pytest.raises(ValueError):
            loads(bad)
