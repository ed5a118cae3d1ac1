"""runc's verbs, driven as a user or podman drives them, checked by their effect."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctr_systemd import cgroups
from tests.cli import pyctr
from tests.integration.conftest import STATE_ROOT, Bundle, cgroup_file, show, unit_pids


def new_id() -> str:
    return f"t-{os.urandom(3).hex()}"


def ok(*args: str, input: str | None = None) -> str:
    done = pyctr(*args, input=input)
    assert done.returncode == 0, f"pyctr {' '.join(args)}: {done.stderr}"
    return done.stdout


def refused(*args: str) -> str:
    """The one-line error of a command that must fail with 125."""
    done = pyctr(*args)
    assert done.returncode == 125, f"pyctr {' '.join(args)} exited {done.returncode}: {done.stdout}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyctr: "), done.stderr
    return lines[0]


def status(container_id: str) -> str:
    return str(json.loads(ok("state", container_id))["status"])


def wait_status(container_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 10
    while status(container_id) != wanted:
        assert time.monotonic() < deadline, f"{container_id} never became {wanted}"
        time.sleep(0.05)


def test_spec_writes_runcs_defaults_once(tmp_path: Path) -> None:
    ok("spec", "--bundle", str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"] and config["root"] == {"path": "rootfs", "readonly": True}
    before = (tmp_path / "config.json").read_bytes()
    assert "config.json exists" in refused("spec", "--bundle", str(tmp_path))
    assert (tmp_path / "config.json").read_bytes() == before


def test_create_start_kill_delete(oci_bundle: Bundle, tmp_path: Path) -> None:
    cid = new_id()
    out = tmp_path / "out"
    oci_bundle.rootfs.joinpath("out").mkdir()
    oci_bundle.config["mounts"].append(
        {
            "destination": "/out",
            "type": "bind",
            "source": str(out.parent / "bundle/rootfs/out"),
            "options": ["rbind"],
        }
    )
    oci_bundle.write("sh", "-c", "echo started > /out/started; exec sleep 1000")
    pid_file = tmp_path / "pid"
    ok("create", "--bundle", str(oci_bundle.path), "--pid-file", str(pid_file), cid)
    try:
        state = json.loads(ok("state", cid))
        pid = int(pid_file.read_text())  # a bare number, as conmon reads it
        assert state["status"] == "created" and state["pid"] == pid and state["id"] == cid
        assert state["bundle"] == str(oci_bundle.path)
        unit = f"pyctr-{cid}.scope"
        assert pid in unit_pids(unit) and show(unit, "Slice")["Slice"] == "pyctr.slice"
        assert not (oci_bundle.rootfs / "out/started").exists()  # nothing ran yet
        ok("start", cid)
        assert status(cid) == "running"
        deadline = time.monotonic() + 10
        while not (oci_bundle.rootfs / "out/started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")
        ok("kill", cid, "KILL")
        wait_status(cid, "stopped")
    finally:
        pyctr("delete", "--force", cid)
    assert not (STATE_ROOT / cid).exists()
    assert "does not exist" in refused("state", cid)


def test_run_in_the_foreground_returns_the_exit_status(oci_bundle: Bundle) -> None:
    oci_bundle.write("sh", "-c", "echo out; echo err >&2; exit 7")
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n", "err\n")


def test_run_inside_the_bundle_as_the_lab_does(oci_bundle: Bundle) -> None:
    import subprocess
    import sys

    from tests.cli import CHECKOUT

    oci_bundle.write("hostname")
    oci_bundle.config["hostname"] = "labbox"
    oci_bundle.write()
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    done = subprocess.run(
        [sys.executable, "-m", "pyctr_systemd", "run", new_id()],
        cwd=oci_bundle.path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "labbox\n"), done.stderr


@pytest.fixture
def running(oci_bundle: Bundle) -> Iterator[tuple[str, int]]:
    """A detached container running `sleep`: (id, pid)."""
    cid = new_id()
    oci_bundle.write("sleep", "1000")
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    yield cid, int(json.loads(ok("state", cid))["pid"])
    pyctr("delete", "--force", cid)


def test_list_in_every_format(running: tuple[str, int]) -> None:
    cid, pid = running
    table = ok("list").splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    row = next(line.split() for line in table[1:] if line.split()[0] == cid)
    assert row[1:3] == [str(pid), "running"]
    entry = next(e for e in json.loads(ok("list", "--format", "json")) if e["id"] == cid)
    assert (entry["pid"], entry["status"]) == (pid, "running")
    assert cid in ok("list", "-q").split()


def test_ps_lists_the_containers_processes(running: tuple[str, int]) -> None:
    cid, pid = running
    assert json.loads(ok("ps", "--format", "json", cid)) == [pid]
    lines = ok("ps", cid).splitlines()
    assert "PID" in lines[0].split() and len(lines) == 2 and str(pid) in lines[1].split()
    custom = ok("ps", cid, "-o", "pid,comm").splitlines()
    assert custom[1].split() == [str(pid), "sleep"]


def test_exec_joins_every_namespace_and_the_unit(running: tuple[str, int]) -> None:
    cid, pid = running
    script = "for n in mnt uts ipc net pid cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup"
    out = ok("exec", cid, "sh", "-c", script).splitlines()
    theirs = [os.readlink(f"/proc/{pid}/ns/{n}") for n in ("mnt", "uts", "ipc", "net", "pid")]
    assert out[:5] == theirs
    assert ok("exec", cid, "cat", "/proc/1/cmdline").startswith("sleep")  # pid 1: the container's init
    # runc's default spec has no cgroup namespace: the unit's path shows
    tracked = [line for line in out[6:] if line.split(":")[1] in ("name=systemd", "")]
    assert tracked and all(line.endswith(f"/pyctr-{cid}.scope") for line in tracked), out[6:]
    done = pyctr("exec", cid, "sh", "-c", "exit 5")
    assert done.returncode == 5


def test_exec_options_and_process_file(running: tuple[str, int], tmp_path: Path) -> None:
    cid, _ = running
    out = ok(
        "exec",
        "-e",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1000",
        cid,
        "sh",
        "-c",
        "echo $GREETING $PWD; id",
    )
    assert out.splitlines() == ["hi /tmp", "uid=1000 gid=1000"]
    process = {
        "args": ["sh", "-c", "echo from file; id -u; cat /proc/self/oom_score_adj; ulimit -n"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 7, "gid": 7},
        "oomScoreAdj": 123,  # set through the host's /proc, before the container's mount namespace
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}],
    }
    (tmp_path / "process.json").write_text(json.dumps(process))
    assert ok("exec", "--process", str(tmp_path / "process.json"), cid) == "from file\n7\n123\n77\n"


def test_exec_detached_writes_its_pid(running: tuple[str, int], tmp_path: Path) -> None:
    cid, _ = running
    ok("exec", "-d", "--pid-file", str(tmp_path / "pid"), cid, "sleep", "100")
    pid = int((tmp_path / "pid").read_text())
    assert pid in unit_pids(f"pyctr-{cid}.scope")
    os.kill(pid, 9)


def test_pause_and_resume_freeze_the_container(running: tuple[str, int]) -> None:
    cid, pid = running
    ok("pause", cid)
    assert status(cid) == "paused"
    assert "not running" in refused("pause", cid)
    ok("resume", cid)
    assert status(cid) == "running"
    assert "not paused" in refused("resume", cid)


def test_update_changes_limits_live(running: tuple[str, int], tmp_path: Path) -> None:
    cid, _ = running
    unit = f"pyctr-{cid}.scope"
    ok("update", "--memory", "64M", "--pids-limit", "20", cid)
    assert show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": "67108864", "TasksMax": "20"}
    assert cgroup_file(unit, "memory", "memory.limit_in_bytes", "memory.max") == "67108864"
    assert cgroup_file(unit, "pids", "pids.max", "pids.max") == "20"
    (tmp_path / "r.json").write_text(json.dumps({"memory": {"limit": 100 << 20}, "pids": {"limit": 30}}))
    ok("update", "-r", str(tmp_path / "r.json"), cid)
    assert show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(100 << 20), "TasksMax": "30"}
    ok("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": 40}}))
    assert show(unit, "TasksMax") == {"TasksMax": "40"}
    ok("update", "--cpu-shares", "2048", "--cpu-quota", "20000", "--cpu-period", "50000", cid)
    if cgroups.is_unified():
        assert show(unit, "CPUWeight", "CPUQuotaPerSecUSec") == {
            "CPUWeight": "200",
            "CPUQuotaPerSecUSec": "400ms",
        }
        assert cgroup_file(unit, "cpu", "", "cpu.weight") == "200"
        assert cgroup_file(unit, "cpu", "", "cpu.max") == "20000 50000"
    else:
        assert show(unit, "CPUShares", "CPUQuotaPerSecUSec") == {
            "CPUShares": "2048",
            "CPUQuotaPerSecUSec": "400ms",
        }
        assert cgroup_file(unit, "cpu", "cpu.shares", "") == "2048"
        assert cgroup_file(unit, "cpu", "cpu.cfs_quota_us", "") == "20000"
        assert cgroup_file(unit, "cpu", "cpu.cfs_period_us", "") == "50000"


def test_kill_all_and_signals_by_name_or_number(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.write("sh", "-c", "trap 'exit 42' USR1; sleep 1000 & wait")
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        assert "invalid signal" in refused("kill", cid, "NOPE")
        unit = f"pyctr-{cid}.scope"
        deadline = time.monotonic() + 10
        while len(unit_pids(unit)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ok("kill", "--all", cid, "9")
        wait_status(cid, "stopped")
    finally:
        pyctr("delete", "--force", cid)


def test_lifecycle_refusals_change_nothing(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.write("sleep", "1000")
    ok("create", "--bundle", str(oci_bundle.path), cid)
    try:
        assert "already exists" in refused("create", "--bundle", str(oci_bundle.path), cid)
        assert status(cid) == "created"
        ok("start", cid)
        assert "cannot start an already running container" in refused("start", cid)  # runc's words
        assert "not stopped: running" in refused("delete", cid)
        assert status(cid) == "running"
    finally:
        ok("delete", "--force", cid)
    for verb in ("start", "state", "kill", "delete", "pause", "resume", "ps"):
        assert refused(verb, cid) == f"pyctr: container {cid} does not exist"
    ok("delete", "--force", cid)  # as runc: nothing to do is no error with --force


def test_delete_of_a_created_container_ends_its_init(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.write("true")
    ok("create", "--bundle", str(oci_bundle.path), cid)
    pid = json.loads(ok("state", cid))["pid"]
    ok("delete", cid)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_bad_bundles_fail_in_one_line_leaving_nothing(oci_bundle: Bundle, tmp_path: Path) -> None:
    cid = new_id()
    (oci_bundle.path / "config.json").write_text("{not json")
    assert "config.json: not valid JSON" in refused("create", "--bundle", str(oci_bundle.path), cid)
    oci_bundle.config["process"]["args"] = []
    oci_bundle.write()
    line = refused("create", "--bundle", str(oci_bundle.path), cid)
    assert line == "pyctr: config.json: process.args: must be a non-empty list of strings"
    oci_bundle.config["process"]["args"] = ["sh"]
    oci_bundle.config["root"]["path"] = "missing"
    oci_bundle.write()
    assert "rootfs" in refused("create", "--bundle", str(oci_bundle.path), cid)
    oci_bundle.config["root"]["path"] = "rootfs"
    oci_bundle.write("/no/such/program")
    done = pyctr("create", "--bundle", str(oci_bundle.path), cid)
    assert done.returncode == 127 and "no such file or directory" in done.stderr.lower()
    assert "no config.json" in refused("create", "--bundle", str(tmp_path / "nowhere"), cid)
    assert "invalid container id" in refused("create", "--bundle", str(oci_bundle.path), "../x")
    assert not (STATE_ROOT / cid).exists()


def test_log_file_gets_the_error_as_json(oci_bundle: Bundle, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    done = pyctr("--log", str(log), "--log-format", "json", "state", "nosuch")
    assert done.returncode == 125
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and entry["msg"] == "container nosuch does not exist"


def test_features_describes_the_runtime() -> None:
    features = json.loads(ok("features"))
    assert features["linux"]["cgroup"]["systemd"] is True
    assert "rbind" in features["mountOptions"] and "createRuntime" in features["hooks"]


def test_exec_detached_that_cannot_run_fails(running: tuple[str, int]) -> None:
    cid, _ = running
    done = pyctr("exec", "-d", cid, "/etc/passwd")
    assert (done.returncode, done.stderr) == (126, 'pyctr: exec: "/etc/passwd": permission denied\n')


def test_an_unwritable_pid_file_is_one_line_and_leaves_nothing(oci_bundle: Bundle, tmp_path: Path) -> None:
    cid = new_id()
    oci_bundle.write("true")
    line = refused(
        "create", "--bundle", str(oci_bundle.path), "--pid-file", str(tmp_path / "no/such/pid"), cid
    )
    assert "cannot write pid file" in line
    assert not (STATE_ROOT / cid).exists()
