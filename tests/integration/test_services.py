"""Declared containers as systemd services: define, systemctl start pyctr@NAME, undefine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from pyctr_systemd import cgroups, definitions
from tests.cli import CHECKOUT, pyctr, start_pyctr
from tests.integration.conftest import Bundle, cgroup_file, show, systemctl, unit_pids, wait_for_line

# PID 1 of a pid namespace ignores signals it has no handler for: this one stops on SIGTERM.
SLEEP = "trap 'exit 0' TERM; sleep 1000 & wait"


def ok(*args: str) -> str:
    done = pyctr(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(what: str, check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def no_python_in(unit: str) -> bool:
    return all(b"python" not in Path(f"/proc/{p}/cmdline").read_bytes() for p in unit_pids(unit))


def journal(unit: str) -> str:
    return subprocess.run(
        ["journalctl", "-u", unit, "--no-pager", "-o", "cat"], capture_output=True, text=True
    ).stdout


def test_define_start_stop_undefine(units: None) -> None:
    ok(
        "define",
        "web",
        "--memory",
        "64M",
        "--pids-limit",
        "10",
        "--",
        "sh",
        "-c",
        f"echo web is up; {SLEEP}",
    )
    service = "pyctr@web.service"
    assert "web" in ok("defined")
    systemctl("start", service)  # returns once the payload runs (Type=notify)
    try:
        props = show(service, "ActiveState", "MainPID", "MemoryMax", "TasksMax", "Slice")
        assert (props["ActiveState"], props["MemoryMax"], props["TasksMax"]) == (
            "active",
            str(64 << 20),
            "10",
        )
        assert props["Slice"] == "pyctr.slice"
        main = int(props["MainPID"])
        assert Path(f"/proc/{main}/cmdline").read_bytes().split(b"\0")[0] == b"sh"
        # The launcher shields itself from the OOM killer, not the container.
        own = show(service, "OOMScoreAdjust")["OOMScoreAdjust"]
        assert Path(f"/proc/{main}/oom_score_adj").read_text().strip() == own
        wait_for("pyctr to leave the service", lambda: no_python_in(service))  # nothing stays resident
        assert cgroup_file(service, "pids", "pids.max", "pids.max") == "10"
        wait_for("the payload's output in the journal", lambda: "web is up" in journal(service))
        assert "web" in ok("defined").split()
    finally:
        systemctl("stop", service)
    assert show(service, "ActiveState")["ActiveState"] == "inactive"
    ok("undefine", "web")
    assert not Path(definitions.path("web")).exists() and not Path(definitions.dropin_path("web")).exists()
    assert "container web is not defined" in pyctr("undefine", "web").stderr


def test_redefining_updates_the_limits(units: None) -> None:
    ok("define", "db", "--memory", "32M", "--", "true")
    ok("define", "db", "--memory", "48M", "--restart", "always", "--", "true")
    assert show("pyctr@db.service", "MemoryMax", "Restart") == {
        "MemoryMax": str(48 << 20),
        "Restart": "always",
    }


def test_restart_on_failure(units: None) -> None:
    ok("define", "crash", "--restart", "on-failure", "--", "sh", "-c", "sleep 0.2; exit 3")
    service = "pyctr@crash.service"
    systemctl("start", service)
    try:
        wait_for("a restart", lambda: int(show(service, "NRestarts")["NRestarts"]) >= 1)
        assert show(service, "ExecMainStatus")["ExecMainStatus"] in ("3", "0")
    finally:
        systemctl("stop", service)
        systemctl("reset-failed", service, check=False)


def test_a_bad_definition_fails_with_a_journal_line(units: None, marked_rootfs: tuple[str, str]) -> None:
    root, _ = marked_rootfs
    ok("define", "broken", root, "--", "true")
    shutil.rmtree(root)
    service = "pyctr@broken.service"
    assert systemctl("start", service, check=False).returncode != 0
    assert show(service, "ActiveState")["ActiveState"] == "failed"
    wait_for("the reason in the journal", lambda: f"{root}" in journal(service))
    systemctl("reset-failed", service, check=False)


def test_define_refuses_bad_input_and_writes_nothing(units: None, tmp_path: Path) -> None:
    for args, message in (
        (["bad name", "--", "true"], "invalid container name"),
        (["x", "--memory", "lots", "--", "true"], "--memory"),
        (["x", str(tmp_path / "nowhere"), "--", "true"], "nowhere"),
    ):
        done = pyctr("define", *args)
        assert done.returncode == 125 and message in done.stderr, done.stderr
    assert definitions.defined() == []


def test_run_detached_logs_stop_rm() -> None:
    done = pyctr(
        "run",
        "-d",
        "--name",
        "bg",
        "--memory",
        "32M",
        "--",
        "sh",
        "-c",
        f"echo hello from bg; {SLEEP}",
    )
    assert (done.returncode, done.stdout) == (0, "bg\n"), done.stderr
    service = "pyctr-bg.service"
    try:
        props = show(service, "ActiveState", "MainPID", "MemoryMax", "Slice", "OOMPolicy")
        assert (props["ActiveState"], props["MemoryMax"], props["Slice"], props["OOMPolicy"]) == (
            "active",
            str(32 << 20),
            "pyctr.slice",
            "stop",
        )
        assert Path(f"/proc/{props['MainPID']}/cmdline").read_bytes().startswith(b"sh")
        wait_for("pyctr to leave the service", lambda: no_python_in(service))  # nothing stays resident
        wait_for("the output in the journal", lambda: "hello from bg" in pyctr("logs", "bg").stdout)
        by_field = subprocess.run(
            ["journalctl", "CONTAINER_NAME=bg", "-o", "cat"], capture_output=True, text=True
        )
        assert "hello from bg" in by_field.stdout
        assert "is active" in pyctr("rm", "bg").stderr
        ok("stop", "bg")
    finally:
        pyctr("rm", "--force", "bg")
    assert systemctl("list-units", "--all", "--no-legend", service).stdout.strip() == ""


def test_run_detached_that_cannot_start_says_why_and_leaves_nothing() -> None:
    done = pyctr("run", "-d", "--name", "nf", "--", "/no/such/program")
    assert done.returncode == 125 and "container nf did not start" in done.stderr, done.stderr
    assert "/no/such/program" in done.stderr
    assert systemctl("list-units", "--all", "--no-legend", "pyctr-nf.service").stdout.strip() == ""


def test_a_name_is_one_container_however_it_runs(units: None, oci_bundle: Bundle) -> None:
    ok("run", "-d", "--name", "solo", "--", "sh", "-c", SLEEP)
    try:
        taken = pyctr("run", "--name", "solo", "--", "true")
        assert (taken.returncode, taken.stderr) == (
            125,
            "pyctr: container name is already in use: pyctr-solo.service is active\n",
        )
        ok("define", "solo", "--", "true")
        assert systemctl("start", "pyctr@solo.service", check=False).returncode != 0
        wait_for("the reason in the journal", lambda: "already in use" in journal("pyctr@solo.service"))
        ok("undefine", "solo")
        oci = pyctr("create", "--bundle", str(oci_bundle.write("true").path), "solo")
        assert (oci.returncode, oci.stderr) == (
            125,
            "pyctr: container name is already in use: pyctr-solo.service is active\n",
        )
    finally:
        ok("rm", "--force", "solo")
    first = start_pyctr("run", "--name", "solo", "--", "sh", "-c", "echo ready; read x")
    try:
        wait_for_line(first, "ready")
        taken = pyctr("run", "-d", "--name", "solo", "--", "true")
        assert (taken.returncode, taken.stderr) == (
            125,
            "pyctr: container name is already in use: pyctr-solo.scope is active\n",
        )
        assert systemctl("list-units", "--all", "--no-legend", "pyctr-solo.service").stdout.strip() == ""
    finally:
        first.communicate("\n", timeout=30)
    assert first.returncode == 0


def test_stats_cgls_and_cgtop_show_the_container() -> None:
    ok("run", "-d", "--name", "seen", "--memory", "32M", "--pids-limit", "20", "--", "sh", "-c", SLEEP)
    service = "pyctr-seen.service"
    try:
        row = next(r for r in json.loads(ok("stats", "--format", "json", "seen")) if r["name"] == "seen")
        assert (row["unit"], row["MemoryMax"], row["TasksMax"]) == (service, 32 << 20, 20)
        assert row["TasksCurrent"] >= 1 and row["MemoryCurrent"] > 0
        # systemd counts CPU time on v1 only where cpu and cpuacct share a hierarchy, as
        # systemd itself mounts them; our machines mount them apart.
        shared = any({"cpu", "cpuacct"} <= m.controllers() for m in cgroups.mounts())
        if cgroups.is_unified() or shared:
            assert row["CPUUsageNSec"] is not None
        table = ok("stats").splitlines()
        assert table[0].split()[:3] == ["NAME", "UNIT", "CPU"] and any(
            line.startswith("seen ") for line in table
        )
        assert "no running container nosuch" in pyctr("stats", "nosuch").stderr
        cgls = subprocess.run(
            ["systemd-cgls", "--no-pager", "-u", "pyctr.slice"], capture_output=True, text=True
        )
        assert service in cgls.stdout and "sleep 1000" in cgls.stdout, cgls.stdout
        top = subprocess.run(
            ["systemd-cgtop", "--batch", "--raw", "--iterations=2", "--delay=0.2", "pyctr.slice"],
            capture_output=True,
            text=True,
        )
        lines = [
            line.split() for line in top.stdout.splitlines() if line.split()[:1] == [f"pyctr.slice/{service}"]
        ]
        assert lines and int(lines[-1][1]) >= 1, top.stdout  # the tasks column
    finally:
        ok("stop", "seen")
        pyctr("rm", "seen")


def test_update_is_live_and_persists_for_a_defined_container(units: None) -> None:
    ok("define", "upd", "--memory", "32M", "--", "sh", "-c", SLEEP)
    service = "pyctr@upd.service"
    systemctl("start", service)
    try:
        ok(
            "update",
            "--memory",
            "64M",
            "--pids-limit",
            "30",
            "--cpu-shares",
            "2048",
            "--cpu-quota",
            "20000",
            "upd",
        )
        expected = {"MemoryMax": str(64 << 20), "TasksMax": "30", "CPUQuotaPerSecUSec": "200ms"}
        weight = (
            ("CPUWeight", "200", "cpu.weight")
            if cgroups.is_unified()
            else ("CPUShares", "2048", "cpu.shares")
        )
        expected[weight[0]] = weight[1]
        assert show(service, *expected) == expected
        assert cgroup_file(service, "pids", "pids.max", "pids.max") == "30"
        assert cgroup_file(service, "cpu", weight[2], weight[2]) == weight[1]
        quota = cgroup_file(service, "cpu", "cpu.cfs_quota_us", "cpu.max")
        assert quota == ("20000 100000" if cgroups.is_unified() else "20000")
        systemctl("daemon-reload")
        assert show(service, *expected) == expected
        assert "MemoryMax=67108864" in Path(definitions.dropin_path("upd")).read_text()
    finally:
        systemctl("stop", service)


def test_enable_starts_it_at_boot(units: None) -> None:
    ok("define", "boot", "--", "true")
    systemctl("enable", "pyctr@boot.service")
    try:
        assert systemctl("is-enabled", "pyctr@boot.service", check=False).stdout.strip() == "enabled"
        assert Path(definitions.UNIT_DIR, "multi-user.target.wants", "pyctr@boot.service").is_symlink()
    finally:
        systemctl("disable", "pyctr@boot.service")


def test_an_oom_killed_container_shows_it(units: None) -> None:
    # A worker of the container's init eats memory.
    eater = '(x=0123456789abcdef; while :; do x="$x$x"; done) & wait $!; exit $?'
    ok("define", "eater", "--memory", "16M", "--memory-swap", "0", "--", "sh", "-c", eater)
    service = "pyctr@eater.service"
    systemctl("start", service, check=False)
    try:
        wait_for(
            "the OOM kill", lambda: show(service, "ActiveState")["ActiveState"] in ("failed", "inactive")
        )
        props = show(service, "Result", "OOMPolicy")
        if cgroups.is_unified():
            assert props == {"Result": "oom-kill", "OOMPolicy": "stop"}
        else:
            # systemd (252) counts OOM kills only in v2's memory.events: on v1 the
            # unit fails with the end of its main process, not with oom-kill.
            assert props["Result"] in ("signal", "exit-code"), props
    finally:
        systemctl("stop", service)
        systemctl("reset-failed", service, check=False)


def test_define_an_oci_bundle(units: None, oci_bundle: Bundle) -> None:
    oci_bundle.config["process"]["terminal"] = True  # `runc spec`'s default; a service has none
    oci_bundle.config["hostname"] = "bundled"
    oci_bundle.linux["resources"] = {"memory": {"limit": 48 << 20}, "pids": {"limit": 12}}
    oci_bundle.write("sh", "-c", f"echo from the bundle on $(hostname); {SLEEP}")
    done = pyctr("define", "bund", "--restart", "on-failure", str(oci_bundle.path))
    assert done.returncode == 0 and "process.terminal ignored" in done.stderr, done.stderr
    service = "pyctr@bund.service"
    assert "DeviceAllow=/dev/char/1:3 rwm" in Path(definitions.dropin_path("bund")).read_text()  # /dev/null
    assert show(service, "MemoryMax", "TasksMax", "Restart", "DevicePolicy") == {
        "MemoryMax": str(48 << 20),
        "TasksMax": "12",
        "Restart": "on-failure",
        "DevicePolicy": "strict",
    }
    systemctl("start", service)
    try:
        main = show(service, "MainPID")["MainPID"]
        assert os.path.samefile(f"/proc/{main}/root", oci_bundle.rootfs)
        wait_for("the payload's output", lambda: "from the bundle on bundled" in journal(service))
        assert cgroup_file(service, "pids", "pids.max", "pids.max") == "12"
        ok("update", "--memory", "64M", "bund")
        systemctl("daemon-reload")
        assert show(service, "MemoryMax", "TasksMax") == {"MemoryMax": str(64 << 20), "TasksMax": "12"}
    finally:
        systemctl("stop", service)
    ok("undefine", "bund")
    assert definitions.defined() == []


def test_a_bundle_definition_takes_its_settings_from_config_json(units: None, oci_bundle: Bundle) -> None:
    oci_bundle.write("true")
    bundle = str(oci_bundle.path)
    for args, message in (
        (("--memory", "1G", bundle), "--memory: a bundle's settings are in its config.json"),
        ((bundle, "--", "sh"), "its command is config.json's process.args, not 'sh'"),
    ):
        done = pyctr("define", "bad", *args)
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
    oci_bundle.config["hooks"] = {"prestart": [{"path": "/bin/true"}]}
    oci_bundle.write()
    done = pyctr("define", "bad", bundle)
    assert done.returncode != 0, done.stderr
    assert "config.json: hooks.prestart: a defined container runs no hooks" in done.stderr, done.stderr
    assert definitions.defined() == []
    assert not Path(definitions.UNIT_DIR, "pyctr@bad.service.d").exists()


def test_a_definition_means_what_its_arguments_meant_where_it_was_made(
    units: None, oci_bundle: Bundle
) -> None:
    # A relative ROOTFS and `-e KEY` are read where `define` runs, not where systemd starts it.
    relative = os.path.relpath(oci_bundle.rootfs, CHECKOUT)  # pyctr runs in the checkout
    env = {**os.environ, "GREETING": "hello from define"}
    done = pyctr(
        "define", "rel", "-e", "GREETING", relative, "--", "sh", "-c", f"echo $GREETING; {SLEEP}", env=env
    )
    assert done.returncode == 0, done.stderr
    service = "pyctr@rel.service"
    systemctl("start", service)
    try:
        main = show(service, "MainPID")["MainPID"]
        assert os.path.samefile(f"/proc/{main}/root", oci_bundle.rootfs)
        wait_for("the caller's variable", lambda: "hello from define" in journal(service))
        # Redefining forgets what `pyctr update` changed on the running service.
        ok("update", "--pids-limit", "30", "rel")
        assert show(service, "TasksMax")["TasksMax"] == "30"
        ok("define", "rel", relative, "--", "sh", "-c", SLEEP)
        assert show(service, "TasksMax")["TasksMax"] != "30"
    finally:
        systemctl("stop", service)
