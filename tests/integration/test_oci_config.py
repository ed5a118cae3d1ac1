"""Each config.json field pyctr honours, checked inside the container or on its unit."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pyctr_systemd import cgroups
from tests.cli import pyctr
from tests.integration.conftest import STATE_ROOT, Bundle, cgroup_file, show, systemctl, wait_until
from tests.integration.test_oci_lifecycle import new_id, ok, refused


def run(bundle: Bundle, *script: str, cid: str = "", globals_: tuple[str, ...] = ()) -> str:
    """Run `sh -c SCRIPT` (lines joined) in the bundle's container; its stdout."""
    bundle.write("sh", "-c", "\n".join(script))
    done = pyctr(*globals_, "run", "--bundle", str(bundle.path), cid or new_id())
    assert done.returncode == 0, done.stderr
    return done.stdout


def status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def test_process_identity_and_environment(oci_bundle: Bundle) -> None:
    p = oci_bundle.process
    p["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 0o077}
    p["env"] = ["PATH=/bin", "GREETING=hello"]
    p["cwd"] = "/work/dir"
    out = run(
        oci_bundle, "id -u; id -g; id -G", "echo $GREETING $PWD", "touch /tmp/f", "stat -c %a /tmp/f"
    ).splitlines()
    assert out == ["1000", "1001", "1001 5 6", "hello /work/dir", "600"]


@pytest.mark.parametrize(
    ("env", "user", "expected"),
    [
        (["PATH=/bin"], 1000, "/home/app"),  # from the container's /etc/passwd, as runc sets it
        (["PATH=/bin"], 1001, "/"),  # no entry: runc's fallback
        (["PATH=/bin", "HOME=/mine"], 1000, "/mine"),  # the spec's own wins
    ],
)
def test_home_comes_from_the_containers_passwd(
    oci_bundle: Bundle, env: list[str], user: int, expected: str
) -> None:
    etc = oci_bundle.rootfs / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    oci_bundle.process["env"] = env
    oci_bundle.process["user"] = {"uid": user, "gid": user}
    assert run(oci_bundle, "echo $HOME") == f"{expected}\n"


def test_capabilities_all_five_sets(oci_bundle: Bundle) -> None:
    names = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    oci_bundle.process["capabilities"] = {
        "bounding": names,
        "effective": names[:2],
        "permitted": names,
        "inheritable": names[1:],
        "ambient": ["CAP_KILL"],
    }
    oci_bundle.process["user"] = {"uid": 1000, "gid": 1000}
    status = run(oci_bundle, "cat /proc/self/status")
    mask = {"CAP_CHOWN": 1 << 0, "CAP_KILL": 1 << 5, "CAP_NET_BIND_SERVICE": 1 << 10}
    # A non-root payload keeps across exec only the ambient capabilities (capabilities(7)).
    assert int(status_field(status, "CapBnd"), 16) == sum(mask.values())
    assert int(status_field(status, "CapInh"), 16) == mask["CAP_KILL"] | mask["CAP_NET_BIND_SERVICE"]
    assert int(status_field(status, "CapAmb"), 16) == mask["CAP_KILL"]
    assert int(status_field(status, "CapEff"), 16) == mask["CAP_KILL"]


def test_rlimits_no_new_privileges_and_oom_score(oci_bundle: Bundle) -> None:
    p = oci_bundle.process
    p["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_NPROC", "soft": 77, "hard": 77},
    ]
    p["noNewPrivileges"] = True
    p["oomScoreAdj"] = 345
    out = run(
        oci_bundle,
        "ulimit -n; ulimit -Hn; ulimit -u",
        "cat /proc/self/oom_score_adj",
        "cat /proc/self/status",
    )
    lines = out.splitlines()
    assert lines[:4] == ["123", "456", "77", "345"]
    assert status_field(out, "NoNewPrivs") == "1"


def test_root_readonly_and_hostname(oci_bundle: Bundle) -> None:
    oci_bundle.config["root"]["readonly"] = True
    oci_bundle.config["hostname"] = "box"
    out = run(oci_bundle, "hostname", "touch /x 2>&1 || echo refused", "touch /tmp/ok 2>&1; echo $?")
    lines = out.splitlines()
    assert (
        lines[0] == "box"
        and "Read-only file system" in lines[1]
        and lines[-1] == "refused"
        or "refused" in out
    )


def _mountinfo_line(mountinfo: str, target: str) -> list[str]:
    return next(f for f in (line.split() for line in mountinfo.splitlines()) if len(f) > 4 and f[4] == target)


def test_mounts_with_their_options(oci_bundle: Bundle, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("from the host\n")
    oci_bundle.config["mounts"] += [
        {
            "destination": "/data",
            "type": "bind",
            "source": str(shared),
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
        {
            "destination": "/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["size=1m", "mode=0700", "noexec"],
        },
        {"destination": "/etc/hostfile", "type": "bind", "source": str(shared / "file"), "options": ["bind"]},
    ]
    out = run(
        oci_bundle,
        "cat /data/file /etc/hostfile",
        "touch /data/x 2>&1",
        "stat -c %a /scratch",
        "cat /proc/self/mountinfo",
    )
    lines = out.splitlines()
    assert lines[:2] == ["from the host", "from the host"]
    assert "Read-only file system" in lines[2] and lines[3] == "700"
    data = _mountinfo_line(out, "/data")
    assert {"ro", "nosuid", "nodev"} <= set(data[5].split(","))
    scratch = _mountinfo_line(out, "/scratch")
    assert "noexec" in scratch[5] and "size=1024k" in scratch[-1] and scratch[-3] == "tmpfs"
    for target, fstype in (
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev/pts", "devpts"),
        ("/dev/mqueue", "mqueue"),
        ("/dev/shm", "tmpfs"),
    ):
        assert _mountinfo_line(out, target)[-3] == fstype
    assert not (shared / "x").exists()


def test_cgroup_mount_shows_the_containers_own_cgroups_read_only(oci_bundle: Bundle) -> None:
    oci_bundle.linux["namespaces"].append({"type": "cgroup"})
    out = run(oci_bundle, "cat /proc/self/cgroup", "ls /sys/fs/cgroup", "mkdir /sys/fs/cgroup/x 2>&1 || true")
    assert all(
        line.endswith(":/") for line in out.splitlines() if line[:1].isdigit() and line.count(":") == 2
    )
    if cgroups.is_unified():
        assert "memory.max" in out.split()
    else:
        assert {"memory", "pids", "systemd"} <= set(out.split())
    assert "Read-only file system" in out


def test_new_namespaces_and_joining_one_by_path(oci_bundle: Bundle) -> None:
    holder = subprocess.Popen(["unshare", "--uts", "sh", "-c", "hostname joined; exec sleep 100"])
    try:
        path = f"/proc/{holder.pid}/ns/uts"
        for _ in range(100):
            if os.readlink(path) != os.readlink("/proc/self/ns/uts"):
                break
            subprocess.run(["sleep", "0.02"], check=True)
        oci_bundle.config["hostname"] = ""  # else it would rename the joined namespace
        for ns in oci_bundle.linux["namespaces"]:
            if ns["type"] == "uts":
                ns["path"] = path
        oci_bundle.linux["namespaces"] = [n for n in oci_bundle.linux["namespaces"] if n["type"] != "network"]
        out = run(
            oci_bundle, "hostname", "for n in uts net ipc pid mnt; do readlink /proc/self/ns/$n; done"
        ).split()
        assert out[0] == "joined" and out[1] == os.readlink(path)
        assert out[2] == os.readlink("/proc/self/ns/net")  # no network namespace: the host's
        assert out[3] != os.readlink("/proc/self/ns/ipc") and out[4] != os.readlink("/proc/self/ns/pid")
    finally:
        holder.kill()
        holder.wait()


def test_joining_another_containers_pid_namespace(oci_bundle: Bundle, tmp_path: Path) -> None:
    """What a CRI pod's containers do: their own root and mounts, the pause container's pids."""
    pause = Bundle(tmp_path / "pause")
    pause.write("sleep", "1000")
    pod = new_id()
    ok("run", "-d", "--bundle", str(pause.path), pod)
    try:
        pid = json.loads(ok("state", pod))["pid"]
        for ns in oci_bundle.linux["namespaces"]:
            if ns["type"] == "pid":
                ns["path"] = f"/proc/{pid}/ns/pid"
        assert run(oci_bundle, "ps -o pid,args").split("\n")[1].split() == ["1", "sleep", "1000"]
    finally:
        ok("delete", "--force", pod)


def test_resources_become_unit_properties(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.linux["resources"] = {
        "memory": {"limit": 64 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "pids": {"limit": 42},
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"},
        ],
    }
    oci_bundle.write("sleep", "100")
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        unit = f"pyctr-{cid}.scope"
        props = show(
            unit,
            "MemoryMax",
            "TasksMax",
            "CPUQuotaPerSecUSec",
            "DevicePolicy",
            "DeviceAllow",
            "CPUShares",
            "CPUWeight",
        )
        assert (props["MemoryMax"], props["TasksMax"], props["CPUQuotaPerSecUSec"]) == (
            str(64 << 20),
            "42",
            "500ms",
        )
        allowed = systemctl("show", "--property=DeviceAllow", unit).stdout.splitlines()
        assert props["DevicePolicy"] == "strict" and "DeviceAllow=/dev/char/10:200 rw" in allowed
        assert cgroup_file(unit, "pids", "pids.max", "pids.max") == "42"
        if cgroups.is_unified():
            assert props["CPUWeight"] == "50" and cgroup_file(unit, "cpu", "", "cpu.weight") == "50"
            assert cgroup_file(unit, "cpu", "", "cpu.max") == "50000 100000"
        else:
            assert props["CPUShares"] == "512" and cgroup_file(unit, "cpu", "cpu.shares", "") == "512"
            assert cgroup_file(unit, "cpu", "cpu.cfs_quota_us", "") == "50000"
    finally:
        ok("delete", "--force", cid)


def test_resources_only_cgroup_v2_can_enforce(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.linux["resources"] = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},  # swap: memory+swap
        "cpu": {"cpus": "0", "mems": "0"},
    }
    oci_bundle.write("sleep", "100")
    done = pyctr("run", "-d", "--bundle", str(oci_bundle.path), cid)
    assert done.returncode == 0, done.stderr
    try:
        unit = f"pyctr-{cid}.scope"
        props = show(unit, "MemoryLow", "MemorySwapMax", "AllowedCPUs", "AllowedMemoryNodes")
        if cgroups.is_unified():
            assert done.stderr == ""
            assert props == {
                "MemoryLow": str(32 << 20),
                "MemorySwapMax": str(32 << 20),
                "AllowedCPUs": "0",
                "AllowedMemoryNodes": "0",
            }
            assert cgroup_file(unit, "memory", "", "memory.low") == str(32 << 20)
            assert cgroup_file(unit, "memory", "", "memory.swap.max") == str(32 << 20)
            assert cgroup_file(unit, "cpuset", "", "cpuset.cpus") == "0"
            assert cgroup_file(unit, "cpuset", "", "cpuset.mems") == "0"
        else:  # systemd sets none of these on v1: said, not silently dropped
            assert props == {
                "MemoryLow": "0",
                "MemorySwapMax": "infinity",
                "AllowedCPUs": "",
                "AllowedMemoryNodes": "",
            }
            for field in ("memory.reservation", "memory.swap"):
                assert f"pyctr: warning: {field} is not enforced" in done.stderr
            # but the cpuset is pyctr's own to set there (pyctr_systemd.hierarchies)
            assert "cpu.cpus" not in done.stderr and "cpu.mems" not in done.stderr
            pid = int(json.loads(ok("state", cid))["pid"])
            status = Path(f"/proc/{pid}/status").read_text()
            assert "Cpus_allowed_list:\t0\n" in status and "Mems_allowed_list:\t0\n" in status
    finally:
        ok("delete", "--force", cid)


def test_devices_masked_and_readonly_paths(oci_bundle: Bundle) -> None:
    oci_bundle.linux["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 7, "gid": 8}
    ]
    (oci_bundle.rootfs / "secret").mkdir()
    (oci_bundle.rootfs / "secret/key").write_text("hidden")
    oci_bundle.linux["maskedPaths"] = ["/etc/passwd", "/secret"]
    oci_bundle.linux["readonlyPaths"] = ["/proc/sys"]
    out = run(
        oci_bundle,
        "stat -c '%F %t:%T %a %u %g' /dev/mynull",
        "echo x > /dev/mynull && echo written",
        "wc -c < /etc/passwd; ls /secret | wc -l",
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo ro",
    ).splitlines()
    assert out == ["character special file 1:3 666 7 8", "written", "0", "0", "ro"]


def test_sysctl_in_the_containers_namespaces(oci_bundle: Bundle) -> None:
    oci_bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
    out = run(oci_bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni").split()
    assert out == ["1", "1234"]
    assert Path("/proc/sys/kernel/shmmni").read_text().strip() != "1234"
    oci_bundle.linux["sysctl"] = {"kernel.panic": "1"}
    oci_bundle.write()
    assert "not namespaced" in refused("run", "--bundle", str(oci_bundle.path), new_id())


PROPAGATION_FIELDS = [
    ("slave", "master:"),
    ("shared", "shared:"),
    ("private", ""),
    ("unbindable", "unbindable:"),
]


@pytest.mark.parametrize(
    ("propagation", "field"),
    # The non-recursive values are applied to the whole tree too: a host mount left shared
    # under the root would see the container's mounts.
    [(f"{r}{kind}", field) for r in ("r", "") for kind, field in PROPAGATION_FIELDS],
)
def test_rootfs_propagation(oci_bundle: Bundle, propagation: str, field: str) -> None:
    root = str(oci_bundle.rootfs)
    subprocess.run(["mount", "--bind", root, root], check=True)  # a shared mount to be a slave of
    try:
        subprocess.run(["mount", "--make-shared", root], check=True)
        oci_bundle.linux["rootfsPropagation"] = propagation
        line = _mountinfo_line(run(oci_bundle, "cat /proc/self/mountinfo"), "/")
        optional = [f.split(":")[0] + ":" for f in line[6 : line.index("-")]]
        # rshared: a peer of its own, still receiving the host's mounts as a slave
        assert (field in optional) if field == "shared:" else optional == ([field] if field else []), line
    finally:
        subprocess.run(["umount", root], check=True)


def test_systemd_cgroup_path_names_the_unit(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.linux["cgroupsPath"] = f"machine.slice:oci:{cid}"
    oci_bundle.write("sleep", "100")
    ok("--systemd-cgroup", "run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        props = show(f"oci-{cid}.scope", "Slice", "ControlGroup", "Delegate")
        assert props == {
            "Slice": "machine.slice",
            "ControlGroup": f"/machine.slice/oci-{cid}.scope",
            "Delegate": "yes",
        }
    finally:
        ok("delete", "--force", cid)


def test_annotations_set_unit_properties(oci_bundle: Bundle) -> None:
    cid = new_id()
    oci_bundle.config["annotations"] = {
        "org.systemd.property.TimeoutStopUSec": "uint64 4000000",
        "other": "x",
    }
    oci_bundle.write("sleep", "100")
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        assert show(f"pyctr-{cid}.scope", "TimeoutStopUSec") == {"TimeoutStopUSec": "4s"}
        assert json.loads(ok("state", cid))["annotations"]["other"] == "x"
    finally:
        ok("delete", "--force", cid)


def test_terminal_through_a_console_socket(oci_bundle: Bundle, tmp_path: Path) -> None:
    import array
    import socket

    oci_bundle.process["terminal"] = True
    oci_bundle.process["consoleSize"] = {"height": 30, "width": 100}
    oci_bundle.write("sh", "-c", "stty size; tty")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "console.sock"))
    listener.listen(1)
    cid = new_id()
    try:
        ok(
            "create",
            "--bundle",
            str(oci_bundle.path),
            "--console-socket",
            str(tmp_path / "console.sock"),
            cid,
        )
        conn, _ = listener.accept()
        _, ancillary, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
        fds = array.array("i", ancillary[0][2])
        assert len(fds) == 1  # exactly one descriptor: conmon insists
        ok("start", cid)
        output = b""
        while True:
            try:
                chunk = os.read(fds[0], 1024)
            except OSError:  # EIO: the payload and its terminal are gone
                break
            if not chunk:
                break
            output += chunk
        assert output.decode().split() == ["30", "100", "/dev/pts/0"]
    finally:
        listener.close()
        pyctr("delete", "--force", cid)


HOOK = """#!/bin/sh
state=$(cat)
echo "$1 $(readlink /proc/self/ns/mnt) $state" >> {log}
"""


def test_hooks_run_in_order_with_the_state(oci_bundle: Bundle, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook"
    hook.write_text(HOOK.format(log=log))
    hook.chmod(0o755)
    kinds = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    oci_bundle.config["hooks"] = {k: [{"path": str(hook), "args": ["hook", k]}] for k in kinds}
    # startContainer runs in the container: its path is the container's.
    oci_bundle.config["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /start"]}]
    cid = new_id()
    start_state = json.loads(run(oci_bundle, "cat /start", cid=cid))
    assert (start_state["id"], start_state["status"]) == (cid, "running")
    entries = [line.split(" ", 2) for line in log.read_text().splitlines()]
    assert [e[0] for e in entries] == list(kinds)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    by_kind = {e[0]: (e[1], json.loads(e[2])) for e in entries}
    assert by_kind["createRuntime"][0] == host_mnt and by_kind["createContainer"][0] != host_mnt
    assert all(state["id"] == cid for _, state in by_kind.values())
    assert by_kind["createRuntime"][1]["pid"] > 0 and by_kind["poststop"][1]["status"] == "stopped"


def test_a_failing_or_slow_hook_fails_create_leaving_nothing(oci_bundle: Bundle, tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    oci_bundle.config["hooks"] = {"createRuntime": [{"path": str(slow), "timeout": 1}]}
    oci_bundle.write("true")
    cid = new_id()
    assert "within its timeout of 1s" in refused("create", "--bundle", str(oci_bundle.path), cid)
    oci_bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    oci_bundle.write()
    assert "failed with exit status 1" in refused("create", "--bundle", str(oci_bundle.path), cid)
    assert not (STATE_ROOT / cid).exists()


def test_what_pyctr_cannot_honour_is_said(oci_bundle: Bundle) -> None:
    oci_bundle.linux["intelRdt"] = {"closID": "x"}
    oci_bundle.process["selinuxLabel"] = "system_u:system_r:container_t:s0"
    oci_bundle.write("true")
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode == 0
    assert "intelRdt is not supported" in done.stderr and "selinuxLabel is not supported" in done.stderr
    oci_bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    oci_bundle.write()
    assert "linux.uidMappings" in refused("run", "--bundle", str(oci_bundle.path), new_id())


def test_start_container_hook_alone_and_a_relative_command_from_cwd(oci_bundle: Bundle) -> None:
    # Only a startContainer hook: it runs after pivot_root, where nothing more can be imported.
    oci_bundle.config["hooks"] = {
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /state"]}]
    }
    app = oci_bundle.rootfs / "app"
    app.mkdir()
    (app / "entry.sh").write_text("#!/bin/sh\necho entry in $PWD; cat /state\n")
    (app / "entry.sh").chmod(0o755)
    oci_bundle.process["cwd"] = "/app"
    oci_bundle.write("./entry.sh")
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode == 0, done.stderr
    first, state = done.stdout.split("\n", 1)
    assert first == "entry in /app" and json.loads(state)["status"] == "running"


def test_without_a_mount_namespace_the_container_shares_the_runtimes(oci_bundle: Bundle) -> None:
    """An absent namespace type is inherited (runtime-spec): the container is in pyctr's
    mount namespace, chrooted into root.path, and `exec` joins that root too. Anything to
    mount there is refused, as it would be mounted on the host."""
    oci_bundle.linux["namespaces"] = [ns for ns in oci_bundle.linux["namespaces"] if ns["type"] != "mount"]
    cid = new_id()
    oci_bundle.write("sh", "-c", "echo written > /by-the-container; exec sleep 100")
    refusal = refused("run", "-d", "--bundle", str(oci_bundle.path), cid)
    assert (
        refusal == "pyctr: config.json: mounts: needs a mount namespace (linux.namespaces has no mount entry)"
    )
    for key in ("maskedPaths", "readonlyPaths"):
        del oci_bundle.linux[key]
    oci_bundle.config["mounts"] = []
    oci_bundle.write()
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    try:
        pid = int(json.loads(ok("state", cid))["pid"])
        assert os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino
        assert os.readlink(f"/proc/{pid}/root") == str(oci_bundle.rootfs)
        written = oci_bundle.rootfs / "by-the-container"
        wait_until(written.exists, True, str(written), within=10)
        assert ok("exec", cid, "cat", "/by-the-container") == "written\n"
    finally:
        ok("delete", "--force", cid)
