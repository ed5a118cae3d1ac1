"""The lifecycle's orchestration, with systemd and the host faked (tests/unit/fakes.py):
what create, delete, gc, exec, a foreground run and a service's hand-over ask of systemd
and the host, in which order, and what they leave when a step fails. The integration
tests prove the same paths against the real systemd."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctr_systemd import cgroups, container, definitions, run_config, service, spec
from pyctr_systemd.errors import ContainerExists, LaunchError, SystemdError
from pyctr_systemd.init import sync
from pyctr_systemd.init.launch import LaunchSpec
from pyctr_systemd.limits import Limits
from pyctr_systemd.oci import delete as oci_delete
from pyctr_systemd.oci import exec as oci_exec
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.oci import start as oci_start
from pyctr_systemd.oci import update as oci_update
from pyctr_systemd.oci.create import CreateOptions, create
from pyctr_systemd.run_config import RunConfig
from pyctr_systemd.state import InvalidState, Store, process_start_time
from tests.unit.fakes import FakeChild, FakeHost, FakeUnits, FakeWatch
from tests.unit.test_state import record

UNIT = "pyctr-c1.scope"
GROUP = f"/pyctr.slice/{UNIT}"


@pytest.fixture
def bundle(tmp_path: Path) -> str:
    (tmp_path / "rootfs").mkdir()
    config = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}], "resources": {"pids": {"limit": 64}}},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state"))


def placed_host(**kwargs: object) -> FakeHost:
    host = FakeHost(**kwargs)  # type: ignore[arg-type]
    host.group = GROUP
    return host


# --- the transition table --------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "status", "words"),
    [
        ("start", "running", "cannot start an already running container"),
        ("start", "stopped", "cannot start a container that has stopped"),
        ("kill", "stopped", "c1: container not running"),
        ("pause", "created", "c1: container not running"),
        ("pause", "paused", "c1: container not running"),
        ("resume", "running", "container c1 is not paused"),
        ("exec", "created", "cannot exec in container c1: it is not running"),
        ("exec", "stopped", "c1: container not running"),
        ("ps", "stopped", "c1: container not running"),
        ("update", "stopped", "c1: container not running"),
        ("delete", "running", "cannot delete container c1 that is not stopped: running"),
        ("delete", "paused", "cannot delete container c1 that is not stopped: paused"),
    ],
)
def test_a_verb_in_a_status_it_does_not_act_on_is_refused_in_runcs_words(
    verb: str, status: str, words: str
) -> None:
    with pytest.raises(InvalidState) as e:
        lifecycle.check(verb, record("c1"), status)
    assert str(e.value) == words


def test_every_verb_acts_on_the_statuses_of_the_table() -> None:
    for verb, statuses in lifecycle.ALLOWED.items():
        for status in statuses:
            lifecycle.check(verb, record("c1"), status)  # no refusal
    assert lifecycle.ALLOWED["delete"] == ("created", "stopped")
    assert "stopped" not in lifecycle.ALLOWED["kill"]


# --- create -----------------------------------------------------------------------------


def test_create_starts_the_scope_with_the_child_in_it_and_saves_its_state(bundle: str, store: Store) -> None:
    bus, host = FakeUnits(invocation="abc1"), placed_host()
    child, saved = create(store, "c1", CreateOptions(bundle=bundle), bus=bus, host=host)
    try:
        assert bus.calls[0] == ("refuse_live", "pyctr-c1.service", "pyctr@c1.service")
        assert [c[0] for c in bus.calls[1:]] == ["start_transient", "invocation"]
        props = dict((name, value) for name, _, value in bus.started[UNIT])
        assert props["PIDs"] == [child.pid]
        assert props["Description"] == "pyctr container c1"
        assert props["TasksMax"] == 64 and props["Delegate"] is True
        assert host.calls == [("join", child.pid, None, None)]
        launch = host.launched[0]
        assert launch.exec_fifo == store.fifo("c1") and launch.keyring == "_ses.c1"
        loaded = store.load("c1")
        assert (loaded.pid, loaded.unit, loaded.invocation, loaded.cgroup) == (child.pid, UNIT, "abc1", GROUP)
        assert loaded.start_time == process_start_time(child.pid)
        assert saved.as_json() == loaded.as_json()
    finally:
        host.child.end()  # type: ignore[union-attr]


def test_a_create_that_systemd_refuses_leaves_no_state_and_no_process(bundle: str, store: Store) -> None:
    bus, host = FakeUnits(fail_start=SystemdError("systemd refused to start pyctr-c1.scope")), placed_host()
    with pytest.raises(SystemdError):
        create(store, "c1", CreateOptions(bundle=bundle), bus=bus, host=host)
    assert store.ids() == [] and not os.path.exists(store.dir("c1"))
    assert host.child is not None and host.child.aborted
    assert ("stop", UNIT) in bus.calls  # the unit goes with the failure
    assert ("remove_groups", "") in host.calls


def test_a_create_whose_name_is_taken_does_not_stop_the_other_containers_unit(
    bundle: str, store: Store
) -> None:
    bus = FakeUnits(fail_start=ContainerExists("container name is already in use"))
    with pytest.raises(ContainerExists):
        create(store, "c1", CreateOptions(bundle=bundle), bus=bus, host=placed_host())
    assert bus.named("stop") == [] and store.ids() == []


def test_a_create_that_lands_outside_its_unit_is_undone(bundle: str, store: Store) -> None:
    bus, host = FakeUnits(), FakeHost()
    host.group = "/user.slice/somewhere-else.scope"
    with pytest.raises(SystemdError, match="did not move the container into pyctr-c1.scope"):
        create(store, "c1", CreateOptions(bundle=bundle), bus=bus, host=host)
    assert bus.started == {} and store.ids() == []


def test_a_setup_killed_by_the_oom_killer_says_so(bundle: str, store: Store) -> None:
    host = placed_host(fail=sync.Unreported("container setup failed"), oom=True)
    with pytest.raises(LaunchError, match="out of memory before the payload started"):
        create(store, "c1", CreateOptions(bundle=bundle), bus=FakeUnits(), host=host)
    assert store.ids() == []


def test_a_pid_file_that_cannot_be_written_undoes_the_create(bundle: str, store: Store) -> None:
    bus, host = FakeUnits(), placed_host()
    opts = CreateOptions(bundle=bundle, pid_file="/nonexistent/dir/pid")
    with pytest.raises(Exception, match="cannot write pid file"):
        create(store, "c1", opts, bus=bus, host=host)
    assert host.child is not None and host.child.aborted
    assert bus.started == {} and store.ids() == []


# --- delete and gc ---------------------------------------------------------------------


def test_delete_of_a_stopped_container_leaves_a_unit_of_that_name_that_is_anothers(store: Store) -> None:
    store.reserve("c1")
    store.save(record("c1", pid=0, start_time=0, invocation="old", hooks={}))
    bus = FakeUnits(invocation="new")
    bus.started[UNIT] = []  # the name is another container's now
    host = FakeHost()
    oci_delete.delete(store, "c1", bus=bus, host=host)
    assert bus.named("stop") == [] and host.calls == []
    assert store.ids() == []


def test_delete_of_a_stopped_container_stops_its_own_unit_and_removes_its_groups(store: Store) -> None:
    store.reserve("c1")
    store.save(record("c1", pid=0, start_time=0, invocation="feed", cgroup=GROUP, hooks={}))
    bus, host = FakeUnits(invocation="feed"), FakeHost()
    bus.started[UNIT] = []
    oci_delete.delete(store, "c1", bus=bus, host=host)
    assert bus.named("stop") == [("stop", UNIT)]
    assert host.calls == [("remove_groups", GROUP)]


def test_gc_removes_the_unit_and_directory_a_killed_create_left_and_leaves_a_live_create_alone(
    store: Store,
) -> None:
    creating = Store(store.root)
    creating.reserve("c1")  # a create in progress: its directory, no state yet
    bus = FakeUnits()
    bus.listed = [(UNIT, "active", "/x"), ("other-c1.scope", "active", "/y")]
    bus.properties[(UNIT, "Description")] = "pyctr container c1"
    bus.properties[("other-c1.scope", "Description")] = "someone else's"
    assert oci_delete.gc(store, bus=bus, host=FakeHost()) == []
    assert bus.named("stop") == [] and os.path.isdir(store.dir("c1"))
    for fd in creating._held:  # then it is killed: a dead process holds no lock
        os.close(fd)
    done = oci_delete.gc(store, bus=bus, host=FakeHost())
    assert done == ["c1: removed pyctr-c1.scope, its state"]
    assert bus.named("kill") == [("kill", UNIT, "all", signal.SIGKILL)]
    assert bus.named("stop") == [("stop", UNIT)]  # not the unit someone else made
    assert not os.path.exists(store.dir("c1"))


# --- exec ------------------------------------------------------------------------------


def test_exec_joins_the_containers_namespaces_root_filter_and_keyring() -> None:
    process = oci_exec.process_for_exec(record("c1", process=_recorded()), ["ps"], env=("B=2",), user="7:8")
    mount = spec.NAMESPACES["mount"]
    launch = oci_exec.launch_spec(
        record("c1", pid=4321, process=_recorded()), process, ((mount, "/proc/4321/ns/mnt"),), ""
    )
    assert launch.rootfs == "" and launch.namespaces == ((mount, "/proc/4321/ns/mnt"),)
    assert (launch.uid, launch.gid, launch.keyring) == (7, 8, "pyctr-c1")
    assert launch.env == ("A=1", "B=2") and launch.argv == ("ps",)
    chrooted = oci_exec.launch_spec(record("c1", pid=4321, process=_recorded()), process, (), "")
    assert chrooted.rootfs == "/proc/4321/root"  # no mount namespace of its own: its root


def _recorded() -> dict[str, object]:
    return {
        "env": ["A=1"], "cwd": "/", "uid": 0, "gid": 0, "additionalGids": [],
        "capabilities": {k: [0] for k in ("bounding", "effective", "permitted", "inheritable", "ambient")},
        "noNewPrivileges": True, "apparmorProfile": "", "seccomp": None, "keyring": "pyctr-c1",
    }  # fmt: skip


def test_an_exec_process_is_attached_to_the_unit_before_it_joins_the_v1_groups() -> None:
    bus, host = FakeUnits(), FakeHost()
    child = container.spawn_into(LaunchSpec(rootfs="/", argv=("true",), env=()), bus, host, UNIT)
    try:
        assert bus.calls == [("attach", UNIT, child.pid)]
        assert host.calls == [("join", child.pid, None, None)]
    finally:
        child.abort()


# --- a foreground `pyctr run`: forwarding, the OOM report, cleanup ------------------------


def _run(
    child: FakeChild, watch: FakeWatch, memory: int | None = None
) -> tuple[int | Exception, FakeUnits, FakeHost]:
    bus, host = FakeUnits(), FakeHost(child=child, watch=watch)
    host.group = GROUP
    config = RunConfig("c1", LaunchSpec(rootfs="/", argv=("x",), env=()), Limits(memory=memory), named=False)
    try:
        return container.run(config, bus, host), bus, host
    except Exception as e:
        return e, bus, host


def test_a_run_returns_the_payloads_status_and_stops_its_unit() -> None:
    code, bus, host = _run(FakeChild("sh", "-c", "exit 3"), FakeWatch())
    assert code == 3
    assert [c[0] for c in bus.calls] == ["start_transient", "stop"]
    assert host.child is not None and host.child.sent == [sync.START]
    assert ("remove_groups", GROUP) in host.calls and host.watch.closed


def test_a_payload_killed_while_the_watch_saw_an_oom_is_reported_as_out_of_memory() -> None:
    found, _, _ = _run(FakeChild("sh", "-c", "kill -9 $$"), FakeWatch(seen=True), memory=64 << 20)
    assert isinstance(found, container.OutOfMemory)
    assert str(found) == "container c1 killed: out of memory (MemoryMax=64M)" and found.exit_code == 137


def test_a_payload_killed_without_an_oom_is_137_and_no_more() -> None:
    code, _, _ = _run(FakeChild("sh", "-c", "kill -9 $$"), FakeWatch(seen=False))
    assert code == 137


def test_signals_are_held_until_the_child_exists_then_forwarded() -> None:
    child = FakeChild("sleep", "60")
    with container.Forwarding() as forwarding:
        os.kill(os.getpid(), signal.SIGUSR1)  # before the child is known: held
        forwarding.to(child.pid)
        _, status = os.waitpid(child.pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the handler is put back


# --- a service's hand-over to systemd ---------------------------------------------------


def test_the_payload_is_handed_to_systemd_as_the_services_main_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        bus, child = FakeUnits(), FakeChild()
        host = FakeHost(child=child)
        bus.properties[("pyctr@c1.service", "MainPID")] = child.pid
        try:
            assert (
                service.hand_over(
                    LaunchSpec(rootfs="/", argv=("x",), env=()), "c1", True, "pyctr@c1.service", bus, host
                )
                == 0
            )
            assert sock.recv(100) == f"MAINPID={child.pid}\nREADY=1".encode()
        finally:
            child.end()
    assert host.calls == [("spare_launcher",)] and child.sent == [sync.START]
    assert bus.calls[0] == ("refuse_live", "pyctr-c1.scope", "pyctr-c1.service")
    assert ("call", "org.freedesktop.machine1", "RegisterMachine", "c1") == bus.calls[1][:4]


def test_a_payload_that_cannot_be_exec_d_is_not_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent")
    child = FakeChild(error=LaunchError('exec: "x": executable file not found in $PATH', 127))
    bus = FakeUnits()
    with pytest.raises(LaunchError, match="executable file not found"):
        service.hand_over(
            LaunchSpec(rootfs="/", argv=("x",), env=()),
            "c1",
            False,
            "pyctr@c1.service",
            bus,
            FakeHost(child=child),
        )
    assert child.aborted and bus.named("unit_property") == []


# --- start: the exec fifo ---------------------------------------------------------------


@pytest.fixture
def created(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, FakeChild]]:
    """A created container whose init is a shell that writes the fifo's byte once a reader
    opens it, as the launcher does; it stands in the container's unit as far as state can
    tell (where a process really is is the integration tests' to check)."""
    store.reserve("c1")
    init = FakeChild("sh", "-c", f"printf x > {store.fifo('c1')}; sleep 60")
    while Path(f"/proc/{init.pid}/wchan").read_text() != "wait_for_partner":
        time.sleep(0.001)  # until it waits in the fifo's open, as a created init does
    start_time = process_start_time(init.pid)
    assert start_time is not None
    store.save(record("c1", pid=init.pid, start_time=start_time, hooks={}))
    real = cgroups.of_pid
    monkeypatch.setattr(
        cgroups, "of_pid", lambda pid: {"name=systemd": GROUP} if pid == init.pid else real(pid)
    )
    yield store, init
    init.end()


def test_start_releases_the_init_and_a_second_start_is_refused(created: tuple[Store, FakeChild]) -> None:
    store, init = created
    assert lifecycle.status(store, store.load("c1")) == "created"
    oci_start.start(store, "c1")
    assert not os.path.exists(store.fifo("c1"))  # whoever opened it first started it
    assert lifecycle.status(store, store.load("c1")) == "running"
    with pytest.raises(InvalidState, match="cannot start an already running container"):
        oci_start.start(store, "c1")


def test_start_of_a_container_whose_init_died_says_so(created: tuple[Store, FakeChild]) -> None:
    store, init = created
    record_ = store.load("c1")
    pidfd = os.pidfd_open(init.pid)
    init.end()
    with pytest.raises(InvalidState, match="ended before it could start"):
        oci_start._release(store.fifo("c1"), pidfd, "c1")
    os.close(pidfd)
    assert lifecycle.status(store, record_) == "stopped"


# --- declared containers: define is all or nothing --------------------------------------


@pytest.fixture
def config_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CONFIG_DIR", "UNIT_DIR", "RUNTIME_DIR"):
        monkeypatch.setattr(definitions, name, str(tmp_path / name.lower()))
    return tmp_path


def _run_values(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        o.dest: o.default for o in run_config.OPTIONS if o.dest not in ("name", "detach")
    }
    return values | {"command_only": False, "args": ("/", "sleep", "1")} | changes


def test_define_writes_the_definition_and_drop_in_then_reloads(config_dirs: Path) -> None:
    bus = FakeUnits()
    service.define("web", "always", _run_values(memory="32M"), bus)
    assert bus.calls[-1] == ("reload",)
    assert json.loads(Path(definitions.path("web")).read_text())["run"]["memory"] == "32M"
    dropin = Path(definitions.dropin_path("web")).read_text().splitlines()
    assert {"Restart=always", "DevicePolicy=closed", f"MemoryMax={32 << 20}"} <= set(dropin)


def test_a_define_whose_reload_fails_leaves_nothing(config_dirs: Path) -> None:
    bus = FakeUnits()
    bus.fail_reload = SystemdError("systemd could not reload its units: No space left on device")
    with pytest.raises(SystemdError):
        service.define("web", "no", _run_values(), bus)
    assert definitions.defined() == []
    assert not os.path.exists(definitions.dropin_path("web"))
    assert bus.named("reload") == [("reload",), ("reload",)]  # and the state before, applied again


def test_a_redefine_whose_reload_fails_puts_the_earlier_definition_back(config_dirs: Path) -> None:
    service.define("web", "no", _run_values(memory="32M"), FakeUnits())
    before = Path(definitions.dropin_path("web")).read_text()
    bus = FakeUnits()
    bus.fail_reload = SystemdError("reload failed")
    with pytest.raises(SystemdError):
        service.define("web", "always", _run_values(memory="64M"), bus)
    assert Path(definitions.dropin_path("web")).read_text() == before
    assert json.loads(Path(definitions.path("web")).read_text())["run"]["memory"] == "32M"


def test_rm_refuses_a_running_detached_container_unless_forced() -> None:
    bus = FakeUnits()
    bus.states["pyctr-web.service"] = "active"
    with pytest.raises(Exception, match="container web is active: stop it first, or rm -f"):
        service.remove("web", False, bus)
    assert bus.named("stop") == []
    service.remove("web", True, bus)
    assert [c for c in bus.calls if c[0] in ("kill", "stop", "reset_failed")] == [
        ("kill", "pyctr-web.service", "all", signal.SIGKILL),  # no SIGTERM first, as docker's rm -f
        ("stop", "pyctr-web.service"),
        ("reset_failed", "pyctr-web.service"),
    ]


def test_update_flags_of_zero_leave_a_limit_as_it_is_as_runc_reads_them() -> None:
    res = oci_update.from_flags(memory="0", pids_limit=0, cpu_quota=0, memory_swap="-1")
    assert (res.memory_limit, res.pids_limit, res.cpu_quota, res.memory_swap) == (None, None, None, -1)


def test_an_update_of_a_defined_container_is_kept_in_its_definition(config_dirs: Path) -> None:
    service.define("web", "no", _run_values(memory="32M", pids_limit=10), FakeUnits())
    bus = FakeUnits()
    service.update("web", oci_update.from_flags(memory="0", pids_limit=-1, cpu_quota=50000), bus, FakeHost())
    dropin = set(Path(definitions.dropin_path("web")).read_text().splitlines())
    assert {f"MemoryMax={32 << 20}", "TasksMax=infinity", "CPUQuota=50%", "DevicePolicy=closed"} <= dropin
    assert json.loads(Path(definitions.path("web")).read_text())["run"]["pids_limit"] == -1
    assert bus.calls[-1] == ("active_state", "pyctr@web.service")  # not running: nothing to set live
