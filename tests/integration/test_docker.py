"""Debian's docker (20.10, with its containerd and the runc shim) running containers on pyctr,
with Debian's runc in the same daemon as the control.

Each test runs once per runtime (`docker run --runtime pyctr|runc`) and checks what a docker
user sees; a failure counts against pyctr only where the runc twin passes. The daemon is the
tests' own: its sockets, state and images under /run/pyctr-test-docker (images on a tmpfs),
the systemd cgroup driver, the busybox image imported from a tarball (no registry is reachable).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pyctr_systemd import freezer
from tests.integration.conftest import (
    RUN_LIMITS,
    EngineClient,
    assert_run_limits,
    container_cgroup_file,
    fetch,
    image_tarball,
    runtime_wrapper,
    wait_until,
)

IMAGE = "pyctr-busybox"
HOME = Path("/run/pyctr-test-docker")
RUNTIMES = ("pyctr", "runc")
CLIENT = "/usr/bin/docker"  # Debian's client, whatever else is on PATH


class Docker(EngineClient):
    def __init__(self, home: Path, runtime: str = "pyctr") -> None:
        self.home, self.runtime = home, runtime
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "DOCKER_HOST": f"unix://{home}/docker.sock",
            "DOCKER_CONFIG": str(home / "client"),
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CLIENT, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.home
        )
        if check:
            assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`docker run --runtime RUNTIME ARGS`; ARGS end with the image and command."""
        return self("run", "--runtime", self.runtime, *args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    if not Path(CLIENT).exists() or shutil.which("dockerd") is None:
        pytest.fail("docker.io is not installed: run tools/install-deps test", pytrace=False)
    HOME.mkdir(parents=True, exist_ok=True)
    data = HOME / "data"
    data.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(data)], check=True)  # overlay2 works on tmpfs
    config = {
        "runtimes": {"pyctr": {"path": str(runtime_wrapper(HOME))}},
        "exec-opts": ["native.cgroupdriver=systemd"],
        "data-root": str(data),
        "exec-root": str(HOME / "exec"),
        "pidfile": str(HOME / "docker.pid"),
        "hosts": [f"unix://{HOME}/docker.sock"],
    }
    (HOME / "daemon.json").write_text(json.dumps(config))
    log = (HOME / "dockerd.log").open("w")
    dockerd = subprocess.Popen(
        ["dockerd", "--config-file", str(HOME / "daemon.json")], stdout=log, stderr=log
    )
    docker = Docker(HOME)
    try:
        deadline = time.monotonic() + 60
        while docker("version", check=False).returncode != 0:
            assert dockerd.poll() is None, (HOME / "dockerd.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dockerd did not come up in 60 s"
            time.sleep(0.2)
        docker("import", str(image_tarball(tmp_path_factory.mktemp("docker"))), IMAGE)
        yield docker
    finally:
        docker("rm", "--force", *docker("ps", "--all", "--quiet", check=False).stdout.split(), check=False)
        dockerd.send_signal(signal.SIGTERM)
        dockerd.wait(timeout=60)
        log.close()
        subprocess.run(["umount", "-R", str(data)], check=False)
        shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(params=RUNTIMES)
def docker(daemon: Docker, request: pytest.FixtureRequest) -> Iterator[Docker]:
    user = Docker(daemon.home, request.param)
    yield user
    left = user("ps", "--all", "--quiet").stdout.split()
    if left:
        user("rm", "--force", *left)
    assert left == [], "the test left containers"


def test_run_prints_and_exits_with_the_payloads_status(docker: Docker) -> None:
    assert docker.run("--rm", IMAGE, "echo", "hi").stdout == "hi\n"
    assert docker.run("--rm", IMAGE, "sh", "-c", "exit 3", check=False).returncode == 3


@pytest.mark.parametrize(
    ("command", "code"), [("/no/such/program", 127), ("nosuchprogram", 127), ("/etc/passwd", 126)]
)
def test_a_payload_that_cannot_run(docker: Docker, command: str, code: int) -> None:
    done = docker.run("--rm", IMAGE, command, check=False)
    assert done.returncode == code, done.stderr


def test_detached_logs_ps_top_exec_stop(docker: Docker) -> None:
    docker.run("-d", "--name", "bg", IMAGE, "sh", "-c", "echo started; exec sleep 1000")
    try:
        docker.wait_for("bg", "{{.State.Running}}", "true")
        wait_until(lambda: docker("logs", "bg").stdout, "started\n", "bg's log", within=10)
        assert "bg" in docker("ps", "--format", "{{.Names}}").stdout.split()
        assert "sleep 1000" in docker("top", "bg").stdout
        assert docker("exec", "bg", "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"
        assert docker("exec", "bg", "sh", "-c", "exit 5", check=False).returncode == 5
        assert docker("exec", "bg", "/no/such/program", check=False).returncode == 126  # docker's, for exec
        assert docker("exec", "-t", "bg", "tty").stdout.startswith("/dev/pts/")
        assert docker("exec", "-u", "1000", "bg", "id", "-u").stdout == "1000\n"
        docker("stop", "--time", "1", "bg")
        assert docker.inspect("bg", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    finally:
        docker("rm", "--force", "bg")


def test_interactive_terminal(docker: Docker) -> None:
    """docker run -it and exec -it, from a terminal (script(1) gives the client one)."""
    docker.run("-d", "--name", "tty", IMAGE, "sleep", "1000")
    try:
        for command in (
            f"{CLIENT} run -it --rm --runtime {docker.runtime} {IMAGE} sh -c 'tty; echo $TERM'",
            f"{CLIENT} exec -it tty sh -c 'tty; echo $TERM'",
        ):
            done = subprocess.run(
                ["script", "-qec", command, "/dev/null"],
                env={**docker.env, "TERM": "xterm"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
            )
            # the terminal echoes a NUL of the client's as ^@ before the container's output
            lines = done.stdout.replace("\r", "").replace("^@", "").splitlines()
            assert done.returncode == 0 and lines[-2].startswith("/dev/pts/") and lines[-1] == "xterm", done
    finally:
        docker("rm", "--force", "tty")


def test_kill_with_a_signal_and_a_restart_policy(docker: Docker) -> None:
    docker.run("-d", "--name", "trap", IMAGE, "sh", "-c", "trap 'exit 42' USR1; while :; do sleep 1; done")
    docker.run("-d", "--name", "again", "--restart", "on-failure:2", IMAGE, "sh", "-c", "exit 1")
    try:
        docker.wait_for("trap", "{{.State.Running}}", "true")
        time.sleep(0.3)  # the shell sets its trap
        docker("kill", "--signal", "USR1", "trap")
        docker.wait_for("trap", "{{.State.Status}} {{.State.ExitCode}}", "exited 42")
        docker.wait_for("again", "{{.RestartCount}} {{.State.Status}}", "2 exited")
        assert docker.inspect("again", "{{.State.ExitCode}}") == "1"
    finally:
        docker("rm", "--force", "trap", "again")


def test_pause_and_unpause(docker: Docker) -> None:
    docker.run("-d", "--name", "paused", IMAGE, "sleep", "1000")
    try:
        docker("pause", "paused")
        assert docker.inspect("paused", "{{.State.Status}}") == "paused"
        pid = int(docker.inspect("paused", "{{.State.Pid}}"))
        assert freezer.frozen(pid)  # read from the cgroup the process is in, whoever froze it
        assert "is paused" in docker("exec", "paused", "true", check=False).stderr
        docker("unpause", "paused")
        assert docker("exec", "paused", "echo", "thawed").stdout == "thawed\n"
        docker("pause", "paused")
        docker("rm", "--force", "paused")  # a paused container is removed too
    finally:
        docker("rm", "--force", "paused", check=False)


def test_limits_and_update(docker: Docker) -> None:
    docker.run("-d", "--name", "lim", *RUN_LIMITS, IMAGE, "sleep", "1000")
    try:
        pid = int(docker.inspect("lim", "{{.State.Pid}}"))
        quota = assert_run_limits(pid)
        docker("update", "-m", "128m", "--memory-swap", "256m", "--pids-limit", "80", "lim")
        assert container_cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(128 << 20)
        assert container_cgroup_file(pid, "pids", "pids.max", "pids.max") == "80"
        assert container_cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max") == quota  # unchanged
    finally:
        docker("rm", "--force", "lim")


def test_cpuset_cpus_is_enforced(docker: Docker) -> None:
    done = docker.run("--rm", "--cpuset-cpus", "0", IMAGE, "grep", "Cpus_allowed_list", "/proc/self/status")
    assert done.stdout.split() == ["Cpus_allowed_list:", "0"]


def test_stats_are_the_containers_own(docker: Docker) -> None:
    docker.run("-d", "--name", "st", "-m", "64m", "--cpuset-cpus", "0", IMAGE, "sh", "-c",
               "sleep 1000 & sleep 1000 & wait")  # fmt: skip
    try:
        docker.wait_for("st", "{{.State.Running}}", "true")
        pid = int(docker.inspect("st", "{{.State.Pid}}"))
        assert "Cpus_allowed_list:\t0\n" in Path(f"/proc/{pid}/status").read_text()
        profile = docker.inspect("st", "{{.AppArmorProfile}}")  # where AppArmor is on, as in the v2 guest
        if profile:
            assert Path(f"/proc/{pid}/attr/current").read_text() == f"{profile} (enforce)\n"
        time.sleep(0.5)
        row = docker("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", "st")
        memory, pids, cpu = row.stdout.strip().split("|")
        assert memory.endswith("/ 64MiB") and pids == "3", row.stdout
        assert float(cpu.rstrip("%")) < 5, f"an idle container busy at {cpu}: the host's figures?"
    finally:
        docker("rm", "--force", "st")


def test_oom_kill_is_137_and_oomkilled(docker: Docker) -> None:
    done = docker.run(
        "--name", "eater", "-m", "32m", "--memory-swap", "32m", IMAGE, "tail", "/dev/zero", check=False
    )
    try:
        assert done.returncode == 137
        assert docker.inspect("eater", "{{.State.OOMKilled}}") == "true"
    finally:
        docker("rm", "--force", "eater")


def test_user_env_workdir_read_only_tmpfs_and_volume(docker: Docker, tmp_path: Path) -> None:
    (tmp_path / "shared").write_text("from the host\n")
    tmp_path.chmod(0o755)  # for the container's user 1000
    script = "id -u; echo $GREETING; pwd; touch /x 2>/dev/null || echo ro; touch /scratch/x && echo rw"
    script += "; cat /data/shared"
    done = docker.run(
        "--rm", "-u", "1000:1000", "-e", "GREETING=hi", "-w", "/srv", "--read-only",
        "--tmpfs", "/scratch:mode=1777", "-v", f"{tmp_path}:/data:ro", IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["1000", "hi", "/srv", "ro", "rw", "from the host"]


def test_networks_none_bridge_container_and_a_published_port(docker: Docker, tmp_path: Path) -> None:
    links = "ls /sys/class/net"
    assert docker.run("--rm", "--network", "none", IMAGE, "sh", "-c", links).stdout.split() == ["lo"]
    assert docker.run("--rm", IMAGE, "sh", "-c", links).stdout.split() == ["eth0", "lo"]
    docker.run("-d", "--name", "web", "-p", "127.0.0.1::80", IMAGE, "sh", "-c",
               "mkdir /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www")  # fmt: skip
    try:
        port = docker("port", "web", "80").stdout.split(":")[-1].strip()
        assert fetch(f"http://127.0.0.1:{port}/") == b"served\n"
        mine = docker("exec", "web", "readlink", "/proc/self/ns/net").stdout
        joined = docker.run("--rm", "--network", "container:web", IMAGE, "readlink", "/proc/self/ns/net")
        assert joined.stdout == mine
        fetched = docker.run("--rm", "--network", "container:web", IMAGE, "wget", "-qO-", "http://127.0.0.1/")
        assert fetched.stdout == "served\n"
    finally:
        docker("rm", "--force", "web")


def test_init_capabilities_and_a_device(docker: Docker) -> None:
    assert docker.run("--rm", "--init", IMAGE, "cat", "/proc/1/comm").stdout == "docker-init\n"
    caps = docker.run(
        "--rm", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", IMAGE, "grep", "CapEff", "/proc/self/status"
    )
    assert int(caps.stdout.split()[1], 16) == 1 << 12  # CAP_NET_ADMIN
    denied = docker.run("--rm", "--cap-drop", "CHOWN", IMAGE, "chown", "1", "/etc/passwd", check=False)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    device = docker.run("--rm", "--device", "/dev/null:/dev/mynull", IMAGE, "sh", "-c",
                        "stat -c '%t:%T %a' /dev/mynull && echo x > /dev/mynull && echo written")  # fmt: skip
    assert device.stdout.splitlines() == ["1:3 666", "written"]


def test_privileged(docker: Docker, daemon: Docker) -> None:
    """Where the host allows it; here it may not (the sandbox lacks CAP_SYS_RESOURCE, say):
    then pyctr must fail as runc does, in one clear line."""
    mine = docker.run("--rm", "--privileged", IMAGE, "grep", "CapEff", "/proc/self/status", check=False)
    control = Docker(daemon.home, "runc").run(
        "--rm", "--privileged", IMAGE, "grep", "CapEff", "/proc/self/status", check=False
    )
    assert mine.returncode == control.returncode, (mine.stderr, control.stderr)
    if control.returncode == 0:
        assert mine.stdout == control.stdout
    else:
        assert "OCI runtime create failed" in mine.stderr


def test_cp_and_export(docker: Docker, tmp_path: Path) -> None:
    docker.run("-d", "--name", "cp", IMAGE, "sleep", "1000")
    try:
        (tmp_path / "in").write_text("copied in\n")
        docker("cp", str(tmp_path / "in"), "cp:/in")
        assert docker("exec", "cp", "cat", "/in").stdout == "copied in\n"
        docker("cp", "cp:/in", str(tmp_path / "out"))
        assert (tmp_path / "out").read_text() == "copied in\n"
        docker("export", "--output", str(tmp_path / "fs.tar"), "cp")
        listing = subprocess.run(
            ["tar", "-tf", str(tmp_path / "fs.tar")], capture_output=True, text=True
        ).stdout
        assert "bin/busybox" in listing.split() and "in" in listing.split()
    finally:
        docker("rm", "--force", "cp")


def test_twenty_in_parallel(docker: Docker) -> None:
    with ThreadPoolExecutor(20) as pool:
        outputs = list(pool.map(lambda i: docker.run("--rm", IMAGE, "echo", str(i)).stdout, range(20)))
    assert outputs == [f"{i}\n" for i in range(20)]


def test_apparmor_profile_as_runc_applies_it(daemon: Docker) -> None:
    """Where AppArmor is on (Debian's default, our v2 guest), docker asks for docker-default
    and the payload runs confined by it; where it is off, docker asks for none."""
    seen = {}
    for runtime in RUNTIMES:
        done = Docker(daemon.home, runtime).run("--rm", IMAGE, "cat", "/proc/self/attr/current", check=False)
        seen[runtime] = (done.returncode, done.stdout)
    assert seen["pyctr"] == seen["runc"]
    if "apparmor" in daemon("info", "--format", "{{.SecurityOptions}}").stdout:
        assert seen["pyctr"] == (0, "docker-default (enforce)\n")
