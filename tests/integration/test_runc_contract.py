"""runc's behaviours that engines rely on, beyond its flags, with runc itself as the control.

Each test drives pyctr and Debian's runc through the same steps on the same bundle and
checks that both answer alike: exit status, and the words containerd's shim, docker and
podman match in runc's errors (README, "What engines expect of the runtime").
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli import pyctr, run_to_end
from tests.integration.conftest import Bundle, show, wait_until
from tests.integration.test_oci_lifecycle import new_id, ok, wait_status

RUNC_ROOT = "/run/pyctr-test-runc"


def runc(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = run_to_end(["runc", "--root", RUNC_ROOT, "--log-format", "json", *args], input)
    lines = [json.loads(line)["msg"] for line in done.stderr.splitlines() if line.startswith("{")]
    done.stderr = "".join(f"{line}\n" for line in lines)  # runc's messages, unquoted
    return done


RUNTIMES: dict[str, Callable[..., subprocess.CompletedProcess[str]]] = {"pyctr": pyctr, "runc": runc}


class Both:
    """One container of the bundle under each runtime, driven verb by verb."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle, self.ids = bundle, {"pyctr": new_id(), "runc": new_id()}

    def __call__(self, verb: str, *args: str, input: str | None = None) -> dict[str, tuple[int, str]]:
        """{runtime: (exit status, stderr)} of `VERB [ARGS] ID` (ID before the args for kill)."""
        found = {}
        for name, run in RUNTIMES.items():
            cid = self.ids[name]
            where = ["--bundle", str(self.bundle.path)] if verb in ("create", "run") else []
            tail = [*where, cid, *args] if verb == "kill" else [*where, *args, cid]
            done = run(verb, *tail, input=input)
            found[name] = (done.returncode, done.stderr)
        return found

    def state(self, name: str) -> str:
        return str(json.loads(RUNTIMES[name]("state", self.ids[name]).stdout)["status"])

    def remove(self) -> None:
        pyctr("delete", "--force", self.ids["pyctr"])
        runc("delete", "--force", self.ids["runc"])


@pytest.fixture
def both(oci_bundle: Bundle) -> Iterator[Both]:
    if shutil.which("runc") is None:
        pytest.fail("runc is not installed: run tools/install-deps test", pytrace=False)
    pair = Both(oci_bundle)
    yield pair
    pair.remove()


def codes(found: dict[str, tuple[int, str]]) -> tuple[bool, bool]:
    """(pyctr succeeded, runc succeeded)"""
    return found["pyctr"][0] == 0, found["runc"][0] == 0


def wait_stopped(both: Both) -> None:
    for name in both.ids:
        wait_until(functools.partial(both.state, name), "stopped", f"{name}'s container", within=10)


def test_kill_of_a_container_that_ended(both: Both) -> None:
    """containerd's shim sends `kill --all ID 9` to every container it removes, exited or not,
    and retries forever unless it succeeds; a plain kill is refused in the words it matches."""
    both.bundle.write("sh", "-c", "exit 3")
    assert codes(both("run", "-d")) == (True, True)
    wait_stopped(both)
    assert codes(both("kill", "9", "--all")) == (True, True)  # kill ID SIGNAL, --all after: go-runc's order
    plain = both("kill", "9")
    assert codes(plain) == (False, False)
    assert "container not running" in plain["runc"][1]
    assert "container not running" in plain["pyctr"][1]
    assert codes(both("delete")) == (True, True)


def test_kill_all_of_a_running_container_ends_it(both: Both) -> None:
    both.bundle.write("sh", "-c", "sleep 1000 & sleep 1000")
    assert codes(both("run", "-d")) == (True, True)
    assert codes(both("kill", "9", "--all")) == (True, True)
    wait_stopped(both)


@pytest.mark.parametrize(
    ("payload", "words", "code"),
    [
        (
            "/no/such/program",
            'exec: "/no/such/program": stat /no/such/program: no such file or directory',
            127,
        ),
        ("nosuchprogram", 'exec: "nosuchprogram": executable file not found in $PATH', 127),
        ("/etc/passwd", 'exec: "/etc/passwd": permission denied', 126),
        ("/bin", 'exec: "/bin": permission denied', 126),
    ],
)
def test_a_payload_that_cannot_run_fails_create_in_runcs_words(
    both: Both, payload: str, words: str, code: int
) -> None:
    """docker and podman read 127 or 126 from these words, and only from `create`."""
    (both.bundle.rootfs / "etc").mkdir(exist_ok=True)
    (both.bundle.rootfs / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    both.bundle.write(payload)
    found = both("create")
    assert codes(found) == (False, False)
    assert words in found["runc"][1], found["runc"][1]
    assert found["pyctr"] == (code, f"pyctr: {words}\n")
    assert pyctr("state", both.ids["pyctr"]).returncode != 0  # nothing left to delete


def test_zero_resources_are_not_set(both: Both) -> None:
    """docker writes cpu.shares 0 and blockIO.weight 0 into every config.json."""
    both.bundle.linux["resources"] = {
        "cpu": {"shares": 0},
        "blockIO": {"weight": 0},
        "memory": {"limit": 0},
        "pids": {"limit": 0},
    }
    both.bundle.write("true")
    found = both("run")
    assert codes(found) == (True, True)
    assert found["pyctr"][1] == ""  # and no warning about blockIO


def test_update_from_stdin_leaves_zeros_unchanged(both: Both) -> None:
    """docker's `update --resources -`: every field present, 0 meaning unchanged."""
    both.bundle.linux["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
    both.bundle.write("sleep", "1000")
    assert codes(both("run", "-d")) == (True, True)
    docker_update = {
        "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0, "realtimePeriod": 0,
                "cpus": "", "mems": ""},
        "blockIO": {"weight": 0},
        "pids": {"limit": 60},
    }  # fmt: skip
    found = both("update", "--resources", "-", input=json.dumps(docker_update))
    assert codes(found) == (True, True), found
    unit = f"pyctr-{both.ids['pyctr']}.scope"
    assert show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(64 << 20), "TasksMax": "60"}
    bad = pyctr("update", "--resources", "-", both.ids["pyctr"], input='{"cpu": {"shares": 1}}')
    assert (bad.returncode, bad.stderr) == (125, "pyctr: stdin: cpu.shares: must be 2 to 262144\n")


def test_a_process_that_dies_while_paused_does_not_break_resume(oci_bundle: Bundle) -> None:
    """podman: SIGKILL to a paused container takes effect at the thaw, mid-resume."""
    cid = new_id()
    oci_bundle.write("sh", "-c", "sleep 1000 & sleep 1000 & wait")
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        ok("pause", cid)
        ok("kill", "--all", cid, "9")
        done = pyctr("resume", cid)
        # cgroup v1 holds SIGKILL until the thaw; v2's freezer lets it through at once
        assert done.returncode == 0 or done.stderr == f"pyctr: {cid}: container not running\n", done.stderr
        wait_status(cid, "stopped")
    finally:
        ok("delete", "--force", cid)
    # The leak check after each test finds a freezer group left behind (cgroup v1).


def test_first_call_after_the_bus_restarts(oci_bundle: Bundle) -> None:
    """dbus is socket-activated: right after it starts, systemd is not yet on it. The window
    is short, and not always hit: ten tries hit it on most runs."""
    oci_bundle.write("true")
    for _ in range(10):
        # reset-failed also resets the start limit that ten quick starts of dbus would reach
        for verb in ("reset-failed", "stop"):
            subprocess.run(["systemctl", verb, "dbus.service"], check=True, timeout=60, capture_output=True)
        done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
        assert done.returncode == 0, done.stderr


# --- runtime-spec conformance, runc as the control --------------------------------------------


def test_a_joined_mount_namespace_is_pivoted_into_root_path(oci_bundle: Bundle) -> None:
    """A mount namespace given by path is joined, and the container's root is still root.path,
    with its mounts made in that namespace (the holder's tmpfs shows it was joined)."""
    (oci_bundle.rootfs / "mnt").mkdir(exist_ok=True)
    (oci_bundle.rootfs / "marker").write_text("the bundle's rootfs\n")
    others = [ns for ns in oci_bundle.linux["namespaces"] if ns["type"] != "mount"]
    found = {}
    for name, run in RUNTIMES.items():
        script = f"mount -t tmpfs joined-{name} {oci_bundle.rootfs}/mnt && echo ready && exec sleep 120"
        holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
            oci_bundle.linux["namespaces"] = [
                *others,
                {"type": "mount", "path": f"/proc/{holder.pid}/ns/mnt"},
            ]
            oci_bundle.write("sh", "-c", "cat /marker; grep -o 'joined-[a-z]*' /proc/self/mountinfo")
            done = run("run", "--bundle", str(oci_bundle.path), new_id())
            found[name] = (done.returncode, done.stdout.splitlines()[:2], done.stderr)
        finally:
            holder.kill()
            holder.wait()
    for name in RUNTIMES:
        assert found[name] == (0, ["the bundle's rootfs", f"joined-{name}"], ""), found
    assert "joined-" not in Path("/proc/self/mountinfo").read_text()


def test_a_shared_volume_propagates_both_ways_under_rshared(oci_bundle: Bundle, tmp_path: Path) -> None:
    """docker's `-v SRC:DST:rshared` sets rootfsPropagation rshared: the container's mounts in
    the volume reach the host, and the host's reach the running container."""
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "pyctr-test-shared", str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        vol = {"destination": "/vol", "type": "bind", "source": str(shared), "options": ["rbind", "rshared"]}
        oci_bundle.config["mounts"].append(vol)
        oci_bundle.linux["rootfsPropagation"] = "rshared"
        del oci_bundle.linux["seccomp"]  # which refuses mount(2)
        for kind in ("bounding", "effective", "permitted"):
            oci_bundle.process["capabilities"][kind].append("CAP_SYS_ADMIN")
        for name in RUNTIMES:
            for direction in ("out", "in"):
                (shared / name / direction).mkdir(parents=True)
        found = {name: _mount_both_ways(oci_bundle, name, shared / name) for name in RUNTIMES}
    finally:
        subprocess.run(["umount", "--recursive", str(shared)], check=True)
    for name in RUNTIMES:
        assert found[name] == (True, (0, "from the host\n", "")), found


def _mount_both_ways(bundle: Bundle, name: str, where: Path) -> tuple[bool, tuple[int, str, str]]:
    """(the container's mount in the volume showed on the host, the container's run)"""
    bundle.write(
        "sh",
        "-c",
        f"mount -t tmpfs from-the-container /vol/{name}/out\n"
        f"for i in $(seq 100); do [ -e /vol/{name}/in/marker ] && break; sleep 0.1; done\n"
        f"cat /vol/{name}/in/marker",
    )
    result: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(
        target=lambda: result.append(RUNTIMES[name]("run", "--bundle", str(bundle.path), new_id()))
    )
    runner.start()
    deadline = time.monotonic() + 10
    while not (seen := os.path.ismount(where / "out")) and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["mount", "-t", "tmpfs", "from-the-host", str(where / "in")], check=True)
    (where / "in/marker").write_text("from the host\n")
    runner.join()
    return seen, (result[0].returncode, result[0].stdout, result[0].stderr)
