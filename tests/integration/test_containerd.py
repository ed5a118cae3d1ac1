"""Debian's containerd 1.6 running containers on pyctr through its runc shim (BinaryName = pyctr),
driven by its own client `ctr` and, as kubelet drives it, over the CRI's gRPC socket.

Each test runs once per runtime, pyctr and Debian's runc as the control. The daemon is the
tests' own: socket, state and images under /run/pyctr-test-containerd (on a tmpfs), the
systemd cgroup driver, images imported from archives the tests make (no registry is reachable).
"""

from __future__ import annotations

import importlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import container_cgroup_file, oci_archive, runtime_wrapper, wait_until

HOME = Path("/run/pyctr-test-containerd")
IMAGE = "localhost/pyctr-busybox:1"
RUNTIMES = ("pyctr", "runc")

CONFIG = """\
version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{home}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  # Pause containers ask for -998, and the sandbox the tests run in may lack CAP_SYS_RESOURCE
  # (runc and pyctr then refuse alike): this keeps scores at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{home}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "pyctr"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyctr]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyctr.options]
        BinaryName = "{wrapper}"
        SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
"""
# Pods on a bridge of their own, in the tests' network namespace, not routed anywhere.
BRIDGE = "pyctr-cni0"


def cni_config(home: Path) -> str:
    ipam = {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "dataDir": f"{home}/ipam"}
    bridge = {"type": "bridge", "bridge": BRIDGE, "ipam": ipam}
    return json.dumps({"cniVersion": "0.4.0", "name": "pyctr-test", "plugins": [bridge]})


class Containerd:
    def __init__(self, home: Path, wrapper: Path) -> None:
        self.home, self.wrapper = home, wrapper
        self.socket = home / "containerd.sock"

    def ctr(
        self, *args: str, namespace: str = "default", check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert done.returncode == 0, f"ctr {' '.join(args)}: {done.stderr}"
        return done


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd is not installed: run tools/install-deps test", pytrace=False)
    HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(HOME)], check=True)  # overlayfs works on tmpfs
    (HOME / "cni").mkdir()
    (HOME / "cni/10-pyctr-test.conflist").write_text(cni_config(HOME))
    wrapper = runtime_wrapper(HOME)
    (HOME / "config.toml").write_text(CONFIG.format(home=HOME, image=IMAGE, wrapper=wrapper))
    log = (HOME / "containerd.log").open("w")
    daemon = subprocess.Popen(["containerd", "--config", str(HOME / "config.toml")], stdout=log, stderr=log)
    c = Containerd(HOME, wrapper)
    try:
        deadline = time.monotonic() + 60
        while c.ctr("version", check=False).returncode != 0:
            assert daemon.poll() is None, (HOME / "containerd.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "containerd did not come up in 60 s"
            time.sleep(0.2)
        archive = oci_archive(tmp_path_factory.mktemp("containerd"), IMAGE, ["sleep", "1000000"])
        for namespace in ("default", "k8s.io"):  # ctr's, and the CRI's
            c.ctr("images", "import", str(archive), namespace=namespace)
        yield c
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
        # What the shims and the daemon leave mounted below their state.
        subprocess.run(["umount", "-R", str(HOME)], check=False)
        subprocess.run(["ip", "link", "delete", BRIDGE], check=False, capture_output=True)
        shutil.rmtree(HOME, ignore_errors=True)


class Ctr:
    """`ctr run` and `ctr task` for one runtime."""

    def __init__(self, c: Containerd, runtime: str) -> None:
        self.c, self.runtime = c, runtime

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """ctr run [ARGS]: options, then the container id and command (IMAGE goes before the id)."""
        binary = ["--runc-binary", str(self.c.wrapper)] if self.runtime == "pyctr" else []
        *options, cid = args[: args.index("--")] if "--" in args else args
        command = list(args[args.index("--") + 1 :]) if "--" in args else []
        return self.c.ctr("run", *self.cgroup(cid), *binary, *options, IMAGE, cid, *command, check=check)

    @staticmethod
    def cgroup(cid: str) -> list[str]:
        return ["--runc-systemd-cgroup", "--cgroup", f"machine.slice:ctr:{cid}"]  # unit ctr-ID.scope

    def cleanup(self, *ids: str) -> None:
        for cid in ids:
            self.c.ctr("task", "kill", "--signal", "SIGKILL", cid, check=False)
            deadline = time.monotonic() + 20  # a task just killed is deleted once it has ended
            while self.c.ctr("task", "delete", cid, check=False).returncode != 0:
                if task_status(self.c, cid) == "" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.c.ctr("containers", "delete", cid, check=False)


@pytest.fixture(params=RUNTIMES)
def ctr(containerd: Containerd, request: pytest.FixtureRequest) -> Iterator[Ctr]:
    user = Ctr(containerd, request.param)
    yield user
    left = containerd.ctr("containers", "list", "--quiet").stdout.split()
    user.cleanup(*left)
    assert left == [], "the test left containers"


def task_status(c: Containerd, cid: str) -> str:
    for line in c.ctr("task", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return fields[-1]
    return ""


def wait_status(c: Containerd, cid: str, wanted: str) -> None:
    wait_until(lambda: task_status(c, cid), wanted, f"task {cid}")


def test_ctr_run_prints_and_exits_with_the_status(ctr: Ctr) -> None:
    assert ctr.run("--rm", "hello", "--", "echo", "hi").stdout == "hi\n"
    assert ctr.run("--rm", "three", "--", "sh", "-c", "exit 3", check=False).returncode == 3


def test_ctr_exec_kill_pause_metrics(ctr: Ctr) -> None:
    c = ctr.c
    ctr.run("--detach", "bg", "--", "sleep", "1000")
    try:
        wait_status(c, "bg", "RUNNING")
        done = c.ctr("task", "exec", "--exec-id", "e1", "bg", "cat", "/proc/1/cmdline")
        assert done.stdout == "sleep\x001000\x00"
        assert (
            c.ctr("task", "exec", "--exec-id", "e2", "bg", "sh", "-c", "exit 4", check=False).returncode == 4
        )
        tty = in_a_terminal(f"ctr --address {c.socket} task exec --tty --exec-id e3 bg tty")
        assert tty.returncode == 0 and "/dev/pts/" in tty.stdout, tty
        c.ctr("task", "pause", "bg")
        wait_status(c, "bg", "PAUSED")
        c.ctr("task", "resume", "bg")
        wait_status(c, "bg", "RUNNING")
        metrics = c.ctr("task", "metrics", "bg").stdout
        assert "pids.current" in metrics and "memory.usage_in_bytes" in metrics or "memory.usage" in metrics
        c.ctr("task", "kill", "--signal", "SIGKILL", "bg")
        wait_status(c, "bg", "STOPPED")
        c.ctr("task", "delete", "bg")
    finally:
        ctr.cleanup("bg")


def in_a_terminal(command: str) -> subprocess.CompletedProcess[str]:
    """ctr's -t wants a terminal of its own: script(1) gives it one."""
    return subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_ctr_terminal(ctr: Ctr) -> None:
    binary = f"--runc-binary {ctr.c.wrapper} " if ctr.runtime == "pyctr" else ""
    cgroup = " ".join(ctr.cgroup("term"))
    done = in_a_terminal(f"ctr --address {ctr.c.socket} run --rm -t {cgroup} {binary}{IMAGE} term tty")
    assert done.returncode == 0 and "/dev/pts/0" in done.stdout, done


def test_ctr_memory_limit_and_oom(ctr: Ctr) -> None:
    limit = 32 << 20
    ctr.run("--detach", "--memory-limit", str(limit), "limited", "--", "sleep", "1000")
    try:
        wait_status(ctr.c, "limited", "RUNNING")
        pid = next(
            int(f[1])
            for f in map(str.split, ctr.c.ctr("task", "ls").stdout.splitlines())
            if f[0] == "limited"
        )
        assert container_cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(limit)
    finally:
        ctr.cleanup("limited")
    eaten = ctr.run("--rm", "--memory-limit", str(limit), "eater", "--", "tail", "/dev/zero", check=False)
    assert eaten.returncode == 137, eaten.stderr


# --- the CRI, as kubelet drives it ---------------------------------------------------------


@pytest.fixture(scope="module")
def cri_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The CRI v1 messages and stubs, compiled from tests/cri/api.proto (kubernetes/cri-api,
    see its header) with Debian's protoc and gRPC plugin."""
    out = tmp_path_factory.mktemp("cri")
    proto = Path(__file__).parents[1] / "cri"
    subprocess.run(
        ["protoc", f"-I{proto}", f"--python_out={out}", f"--grpc_out={out}",
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", str(proto / "api.proto")],
        check=True,
    )  # fmt: skip
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(str(out))


class Cri:
    """One pod at a time on one runtime handler, through containerd's CRI socket."""

    def __init__(self, c: Containerd, api: tuple[Any, Any], handler: str, logs: Path) -> None:
        import grpc

        self.pb, grpc_api = api
        self.channel = grpc.insecure_channel(f"unix://{c.socket}")
        self.runtime = grpc_api.RuntimeServiceStub(self.channel)
        self.handler, self.logs = handler, logs
        self.pods: list[str] = []

    def pod(self, name: str) -> tuple[str, Any]:
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="pyctr-test"),
            log_directory=str(self.logs),
            linux=pb.LinuxPodSandboxConfig(cgroup_parent="kubepods.slice"),  # kubelet's, systemd driver
        )
        reply = self.runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=self.handler)
        )
        self.pods.append(reply.pod_sandbox_id)
        return reply.pod_sandbox_id, config

    def container(self, pod: tuple[str, Any], name: str, *command: str, memory: int = 0) -> str:
        pb = self.pb
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=IMAGE),
            command=list(command),
            log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory)),
        )
        request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
        cid = self.runtime.CreateContainer(request).container_id
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
        return str(cid)

    def status(self, cid: str) -> Any:
        return self.runtime.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid, verbose=True))

    def pid(self, cid: str) -> int:
        return int(json.loads(self.status(cid).info["info"])["pid"])

    def wait_exited(self, cid: str) -> Any:
        wait_until(
            lambda: self.status(cid).status.state, self.pb.CONTAINER_EXITED, f"container {cid}'s state"
        )
        return self.status(cid).status

    def log(self, name: str) -> list[str]:
        """The container's output lines, from the CRI's log format (time stream tag line)."""
        path = self.logs / f"{name}.log"
        return [line.split(" ", 3)[3] for line in path.read_text().splitlines()] if path.exists() else []

    def remove_all(self) -> None:
        pb = self.pb
        for pod in self.pods:
            self.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
            self.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
        self.channel.close()


@pytest.fixture(params=RUNTIMES)
def cri(
    containerd: Containerd, cri_api: tuple[Any, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Cri]:
    client = Cri(containerd, cri_api, request.param, tmp_path)
    try:
        yield client
    finally:
        client.remove_all()


def test_cri_pod_lifecycle_exec_stats_update(cri: Cri) -> None:
    pb = cri.pb
    pod = cri.pod("life")
    cid = cri.container(pod, "app", "sh", "-c", "echo started; exec sleep 1000")
    # The pod's pid namespace (the CRI's default): the pause container's process is there too.
    exec_reply = cri.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["ps", "-o", "args"]))
    assert exec_reply.exit_code == 0 and b"sleep 1000\n" in exec_reply.stdout
    failing = cri.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "exit 6"]))
    assert failing.exit_code == 6
    assert cri.log("app") == ["started"]
    stats = cri.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert stats.memory.working_set_bytes.value > 0 and stats.cpu.usage_core_nano_seconds.value > 0
    pid = cri.pid(cid)
    cri.runtime.UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20)
        )
    )
    assert container_cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(96 << 20)
    cri.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    assert cri.wait_exited(cid).exit_code == 143  # not PID 1 in the pod's pid namespace: SIGTERM ends it
    cri.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))


def test_cri_two_containers_of_a_pod_talk_on_loopback(cri: Cri) -> None:
    pod = cri.pod("talk")
    cri.container(
        pod,
        "server",
        "sh",
        "-c",
        "mkdir /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www",
    )
    client = cri.container(
        pod, "client", "sh", "-c", "until wget -qO- http://127.0.0.1:8080/; do sleep 0.1; done"
    )
    assert cri.wait_exited(client).exit_code == 0
    assert cri.log("client") == ["hello"]


def test_cri_exited_and_oom_killed_containers_show_why(cri: Cri) -> None:
    pod = cri.pod("ends")
    done = cri.wait_exited(cri.container(pod, "three", "sh", "-c", "exit 3"))
    assert (done.exit_code, done.reason) == (3, "Error")
    eaten = cri.wait_exited(cri.container(pod, "eater", "tail", "/dev/zero", memory=32 << 20))
    assert (eaten.exit_code, eaten.reason) == (137, "OOMKilled")


def test_cri_exec_in_a_terminal(cri: Cri) -> None:
    """`crictl exec -it`: Exec answers with a URL on containerd's streaming server, where the
    client speaks kubectl's channel protocol over a WebSocket (v4.channel.k8s.io): stdin on
    channel 0, the terminal's output on 1, the exit status on 3, the terminal's size on 4."""
    import websocket

    pb = cri.pb
    cid = cri.container(cri.pod("tty"), "app", "sleep", "1000")
    request = pb.ExecRequest(container_id=cid, cmd=["sh"], tty=True, stdin=True, stdout=True)
    url = cri.runtime.Exec(request).url
    assert url.startswith("http://127.0.0.1:"), url  # the streaming server stays on loopback
    ws = websocket.create_connection("ws" + url[4:], subprotocols=["v4.channel.k8s.io"], timeout=30)
    output, status = b"", {}
    try:
        ws.send_binary(b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode())
        ws.send_binary(b"\x00tty; stty size; echo $((6 * 7)); exit 3\n")
        while (frame := ws.recv_data())[0] != websocket.ABNF.OPCODE_CLOSE:
            channel, data = frame[1][:1], frame[1][1:]
            if channel == b"\x01":
                output += data
            elif channel == b"\x03":
                status = json.loads(data)
    finally:
        ws.close()
    lines = output.decode().replace("\r", "").splitlines()
    assert [line for line in lines if line.startswith("/dev/pts/")] and "30 100" in lines and "42" in lines, (
        lines
    )
    assert status["status"] == "Failure", status  # the v4 protocol's way to say: exit status 3
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}], status
