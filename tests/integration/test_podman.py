"""Debian's podman with pyctr as its OCI runtime and systemd as its cgroup manager.

podman passes --systemd-cgroup and cgroupsPath machine.slice:libpod:ID, so each
container is libpod-ID.scope. The image is a busybox rootfs imported from a
tarball (no registry is reachable). Storage is vfs on /tmp: an overlay upper
directory may not sit on the sandbox's own overlay root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import (
    RUN_LIMITS,
    EngineClient,
    assert_run_limits,
    container_cgroup_file,
    fetch,
    image_tarball,
    runtime_wrapper,
    show,
    systemctl,
    wait_until,
)

IMAGE = "localhost/pyctr-busybox"


class Podman:
    def __init__(self, home: Path) -> None:
        self.home = home
        runtime = runtime_wrapper(home)
        (home / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{home}/storage"\nrunroot = "/run/pyctr-test-podman"\n'
        )
        (home / "containers.conf").write_text(
            "[containers]\n"
            'netns = "none"\n'
            "[engine]\n"
            'cgroup_manager = "systemd"\n'
            'events_logger = "file"\n'
            'runtime = "pyctr"\n'
            'runtime_supports_json = ["pyctr"]\n'
            "[engine.runtimes]\n"
            f'pyctr = ["{runtime}"]\n'
        )
        self.env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "CONTAINERS_CONF": str(home / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(home / "storage.conf"),
        }

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        # From a scratch directory: conmon writes an "oom" file into its cwd.
        done = subprocess.run(
            ["podman", *args], cwd=self.home, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
        return done


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run tools/install-deps test", pytrace=False)
    home = tmp_path_factory.mktemp("podman")
    p = Podman(home)
    p("import", str(image_tarball(home)), IMAGE)
    yield p
    p("rm", "--all", "--force", "--time", "0", check=False)
    p("rmi", "--all", "--force", check=False)
    subprocess.run(["umount", "-R", str(home / "storage")], capture_output=True, check=False)
    shutil.rmtree("/run/pyctr-test-podman", ignore_errors=True)


def container_id(podman: Podman, name: str) -> str:
    return podman("inspect", "--format", "{{.Id}}", name).stdout.strip()


def test_run_rm_prints_and_exits(podman: Podman) -> None:
    done = podman("run", "--rm", IMAGE, "echo", "hi")
    assert done.stdout == "hi\n"
    assert podman("ps", "--all", "--quiet").stdout == ""


@pytest.mark.parametrize(("command", "code"), [(["sh", "-c", "exit 3"], 3), (["/no/such/program"], 127)])
def test_exit_codes_of_failing_payloads(podman: Podman, command: list[str], code: int) -> None:
    done = podman("run", "--rm", IMAGE, *command, check=False)
    assert done.returncode == code, done.stderr


def test_detached_ps_exec_stop_rm(podman: Podman) -> None:
    podman("run", "-d", "--name", "bg", IMAGE, "sleep", "1000")
    try:
        assert "bg" in podman("ps", "--format", "{{.Names}} {{.Status}}").stdout
        cid = container_id(podman, "bg")
        assert show(f"libpod-{cid}.scope", "Slice")["Slice"] == "machine.slice"
        assert podman("exec", "bg", "cat", "/proc/1/cmdline").stdout.startswith("sleep")
        assert podman("exec", "bg", "sh", "-c", "exit 5", check=False).returncode == 5
        assert podman("exec", "-t", "bg", "tty").stdout.startswith("/dev/pts/")
        podman("stop", "--time", "1", "bg")
        state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "bg").stdout.split()
        assert state == ["exited", "137"]
    finally:
        podman("rm", "--force", "bg")


def test_memory_limit_is_on_the_libpod_scope(podman: Podman) -> None:
    podman("run", "-d", "--name", "mem", "--memory", "64m", IMAGE, "sleep", "1000")
    try:
        cid = container_id(podman, "mem")
        assert show(f"libpod-{cid}.scope", "MemoryMax")["MemoryMax"] == str(64 << 20)
    finally:
        podman("rm", "--force", "--time", "0", "mem")


def test_terminal_through_the_console_socket(podman: Podman) -> None:
    done = podman("run", "--rm", "-t", IMAGE, "tty")
    assert done.stdout.strip() == "/dev/pts/0"


def test_kill(podman: Podman) -> None:
    podman("run", "-d", "--name", "victim", IMAGE, "sleep", "1000")
    try:
        podman("kill", "victim")
        deadline = time.monotonic() + 20
        while podman("inspect", "--format", "{{.State.Status}}", "victim").stdout.strip() != "exited":
            assert time.monotonic() < deadline, "podman kill did not end the container"
            time.sleep(0.1)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", "victim").stdout.strip() == "137"
    finally:
        podman("rm", "--force", "victim")


def test_podmans_seccomp_profile_reaches_the_container(podman: Podman) -> None:
    # podman always sends its profile (containers-common's seccomp.json) in linux.seccomp;
    # what a filter denies is shown with pyctr's own profiles (test_escape.py).
    status = ["grep", "^Seccomp:", "/proc/self/status"]
    assert podman("run", "--rm", IMAGE, *status).stdout == "Seccomp:\t2\n"
    free = podman("run", "--rm", "--security-opt", "seccomp=unconfined", IMAGE, *status)
    assert free.stdout == "Seccomp:\t0\n"


@pytest.mark.parametrize("runtime", ["pyctr", "runc"])
def test_device_home_and_privileged(podman: Podman, runtime: str) -> None:
    """podman writes a device's fileMode with its file-type bits; HOME comes from the image."""
    show = "stat -c '%t:%T %a' /dev/mynull && echo x > /dev/mynull && echo $HOME"
    done = podman(
        "--runtime", runtime, "run", "--rm", "--device", "/dev/null:/dev/mynull", IMAGE, "sh", "-c", show
    )
    assert done.stdout.splitlines() == ["1:3 666", "/root"]
    mine = podman("run", "--rm", "--privileged", IMAGE, "grep", "CapEff", "/proc/self/status", check=False)
    control = podman("--runtime", "runc", "run", "--rm", "--privileged", IMAGE, "grep", "CapEff",
                     "/proc/self/status", check=False)  # fmt: skip
    assert mine.returncode == control.returncode, (mine.stderr, control.stderr)
    assert mine.stdout == control.stdout


@pytest.mark.parametrize("runtime", ["pyctr", "runc"])
def test_pause_unpause_stats_and_cpuset(podman: Podman, runtime: str) -> None:
    podman("--runtime", runtime, "run", "-d", "--name", "st", "--cpuset-cpus", "0", "-m", "64m", IMAGE,
           "sh", "-c", "sleep 1000 & sleep 1000 & wait")  # fmt: skip
    try:
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", "st").stdout)
        assert "Cpus_allowed_list:\t0\n" in Path(f"/proc/{pid}/status").read_text()
        stats = podman("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}|{{.CPUNano}}", "st")
        memory, pids, cpu = stats.stdout.strip().split("|")
        assert memory.endswith("/ 67.11MB") and pids == "3", stats.stdout
        # CPU time: the container's own (its cgroup's, read after), not the host's
        own = container_cgroup_file(pid, "cpuacct", "cpuacct.usage", "cpu.stat")
        own_ns = int(own) if own.isdigit() else int(own.split()[1]) * 1000  # v2: usage_usec first
        assert 0 < int(cpu) <= own_ns < 5 * 10**9, (cpu, own_ns)  # the host's would be minutes
        podman("pause", "st")
        assert podman("inspect", "--format", "{{.State.Status}}", "st").stdout.strip() == "paused"
        podman("unpause", "st")
        podman("stop", "--time", "1", "st")
        podman("rm", "st")  # and no freezer group is left (the leak check)
    finally:
        podman("rm", "--force", "--time", "0", "st", check=False)


def test_healthcheck(podman: Podman) -> None:
    # No interval: podman's timer would run `podman healthcheck` without this test's storage.
    podman("run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok", "--health-interval", "disable",
           IMAGE, "sleep", "1000")  # fmt: skip
    try:
        assert podman("healthcheck", "run", "hc", check=False).returncode == 1  # unhealthy
        podman("exec", "hc", "touch", "/tmp/ok")
        assert podman("healthcheck", "run", "hc", check=False).returncode == 0
        assert podman("inspect", "--format", "{{.State.Health.Status}}", "hc").stdout.strip() == "healthy"
    finally:
        podman("rm", "--force", "--time", "0", "hc")


def test_generate_systemd_runs_the_container_as_a_service(podman: Podman) -> None:
    """`podman generate systemd --new`: systemd starts and stops the container, on pyctr."""
    unit = Path("/run/systemd/system/container-gen.service")
    podman("create", "--name", "gen", IMAGE, "sleep", "1000")
    try:
        text = podman("generate", "systemd", "--new", "--name", "gen").stdout
        podman("rm", "gen")
        environment = " ".join(f"{k}={v}" for k, v in podman.env.items())
        unit.write_text(
            text.replace(
                "[Service]", f"[Service]\nEnvironment={environment}\nWorkingDirectory={podman.home}", 1
            )
        )
        systemctl("daemon-reload")
        systemctl("start", "container-gen.service")
        assert podman("inspect", "--format", "{{.State.Status}} {{.OCIRuntime}}", "gen").stdout.split() == [
            "running",
            "pyctr",
        ]
        systemctl("stop", "container-gen.service")
        assert podman("ps", "--all", "--quiet").stdout == ""  # --new: removed with the service
    finally:
        systemctl("stop", "container-gen.service", check=False)
        unit.unlink(missing_ok=True)
        systemctl("daemon-reload")
        podman("rm", "--force", "--time", "0", "gen", check=False)


# --- what docker's tests do, with podman (test_docker.py), on pyctr and on runc ---------------

RUNTIMES = ("pyctr", "runc")


class On(EngineClient):
    """podman with one runtime: `podman --runtime R ...`."""

    def __init__(self, podman: Podman, runtime: str) -> None:
        self.podman, self.runtime = podman, runtime

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.podman("--runtime", self.runtime, *args, check=check)


@pytest.fixture(params=RUNTIMES)
def on(podman: Podman, request: pytest.FixtureRequest) -> Iterator[On]:
    yield On(podman, request.param)
    left = podman("ps", "--all", "--quiet").stdout.split()
    if left:
        podman("rm", "--force", "--time", "0", *left)
    assert left == [], "the test left containers"


def test_logs_top_signals_and_a_restart_policy(on: On) -> None:
    on(
        "run",
        "-d",
        "--name",
        "bg",
        IMAGE,
        "sh",
        "-c",
        "echo started; trap 'exit 42' USR1; while :; do sleep 1; done",
    )
    on("run", "-d", "--name", "again", "--restart", "on-failure:2", IMAGE, "sh", "-c", "exit 1")
    try:
        wait_until(lambda: on("logs", "bg").stdout, "started\n", "bg's log", within=10)
        assert "sleep 1" in on("top", "bg").stdout
        on("kill", "--signal", "USR1", "bg")
        on.wait_for("bg", "{{.State.Status}} {{.State.ExitCode}}", "exited 42")
        on.wait_for("again", "{{.RestartCount}} {{.State.Status}}", "2 exited")
    finally:
        on("rm", "--force", "--time", "0", "bg", "again")


def test_limits_and_update(on: On) -> None:
    on("run", "-d", "--name", "lim", *RUN_LIMITS, IMAGE, "sleep", "1000")
    try:
        pid = int(on.inspect("lim", "{{.State.Pid}}"))
        assert_run_limits(pid)
        on("update", "--cpus", "0.25", "--cpuset-cpus", "0", "lim")
        assert container_cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max").split()[0] == "25000"
        assert "Cpus_allowed_list:\t0\n" in Path(f"/proc/{pid}/status").read_text()
    finally:
        on("rm", "--force", "--time", "0", "lim")


def test_oom_kill_is_137_and_reported_as_with_runc(podman: Podman) -> None:
    """conmon reads OOM kills from the container's cgroup; in our v1 sandbox it misses them
    with runc too (OOMKilled false): pyctr must answer as runc does."""
    seen = {}
    for runtime in RUNTIMES:
        on = On(podman, runtime)
        eater = ["run", "--name", "eater", "-m", "32m", "--memory-swap", "32m", IMAGE, "tail", "/dev/zero"]
        eaten = on(*eater, check=False)
        try:
            seen[runtime] = (eaten.returncode, on.inspect("eater", "{{.State.OOMKilled}}"))
        finally:
            on("rm", "--force", "eater")
    assert seen["pyctr"] == seen["runc"] and seen["pyctr"][0] == 137, seen


def test_user_env_workdir_read_only_tmpfs_and_volume(on: On, tmp_path: Path) -> None:
    (tmp_path / "shared").write_text("from the host\n")
    tmp_path.chmod(0o755)  # for the container's user 1000
    script = "id -u; echo $GREETING; pwd; touch /x 2>/dev/null || echo ro; touch /scratch/x && echo rw"
    script += "; cat /data/shared"
    done = on(
        "run", "--rm", "-u", "1000:1000", "-e", "GREETING=hi", "-w", "/tmp", "--read-only",
        "--tmpfs", "/scratch:mode=1777", "-v", f"{tmp_path}:/data:ro", IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["1000", "hi", "/tmp", "ro", "rw", "from the host"]


def test_networks_bridge_container_and_a_published_port(on: On) -> None:
    had_netns = os.path.ismount("/run/netns")
    links = "ls /sys/class/net"
    assert on("run", "--rm", IMAGE, "sh", "-c", links).stdout.split() == ["lo"]  # netns = "none" here
    assert on("run", "--rm", "--network", "bridge", IMAGE, "sh", "-c", links).stdout.split() == ["eth0", "lo"]
    on("run", "-d", "--name", "web", "--network", "bridge", "-p", "127.0.0.1::80", IMAGE, "sh", "-c",
       "mkdir /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www")  # fmt: skip
    try:
        port = on("port", "web", "80").stdout.split(":")[-1].strip()
        assert fetch(f"http://127.0.0.1:{port}/") == b"served\n"
        fetched = on("run", "--rm", "--network", "container:web", IMAGE, "wget", "-qO-", "http://127.0.0.1/")
        assert fetched.stdout == "served\n"
    finally:
        on("rm", "--force", "--time", "0", "web")
        if not had_netns:  # podman's first bridge mounts /run/netns and keeps it
            subprocess.run(["umount", "/run/netns"], capture_output=True, check=False)


def test_init_capabilities_cp_and_export(on: On, tmp_path: Path) -> None:
    assert on("run", "--rm", "--init", IMAGE, "cat", "/proc/1/comm").stdout == "podman-init\n"  # catatonit
    caps = on("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", IMAGE, "grep", "CapEff",
              "/proc/self/status")  # fmt: skip
    assert int(caps.stdout.split()[1], 16) == 1 << 12  # CAP_NET_ADMIN
    on("run", "-d", "--name", "cp", IMAGE, "sleep", "1000")
    try:
        (tmp_path / "in").write_text("copied in\n")
        on("cp", str(tmp_path / "in"), "cp:/in")
        assert on("exec", "cp", "cat", "/in").stdout == "copied in\n"
        on("export", "--output", str(tmp_path / "fs.tar"), "cp")
        listing = subprocess.run(
            ["tar", "-tf", str(tmp_path / "fs.tar")], capture_output=True, text=True
        ).stdout
        assert "bin/busybox" in listing.split()
    finally:
        on("rm", "--force", "--time", "0", "cp")


def test_twenty_in_parallel(on: On) -> None:
    with ThreadPoolExecutor(20) as pool:
        outputs = list(pool.map(lambda i: on("run", "--rm", IMAGE, "echo", str(i)).stdout, range(20)))
    assert outputs == [f"{i}\n" for i in range(20)]
