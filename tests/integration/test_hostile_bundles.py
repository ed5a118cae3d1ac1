"""Hostile bundles, planted state and bad input: each test performs an attack and fails if it works.

An attack that is refused must be refused the way every bad input is: exit
status 125, one stderr line "pyctr: ...", and nothing left behind (the autouse
leak check: no unit, state directory, mount or pyctr process). Markers go to
the test's own temporary directory; no file of the host is written over.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyctr_systemd import definitions
from tests.cli import pyctr
from tests.integration.conftest import STATE_ROOT, Bundle, show, systemctl
from tests.integration.test_oci_lifecycle import new_id, ok, wait_status

# capabilities(7) numbers of runc's default bounding set: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
RUNC_DEFAULT_CAPS = 1 << 29 | 1 << 5 | 1 << 10
NOBODY = 65534


def refusal(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one error line of a refused command, which must name each of `needles`."""
    said = f"exit {done.returncode}, stdout {done.stdout!r}, stderr {done.stderr!r}"
    assert "Traceback" not in done.stderr, said
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 125 and len(lines) == 1 and lines[0].startswith("pyctr: "), said
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def caps_of(status: str) -> dict[str, int]:
    """CapBnd, CapEff... of a /proc/PID/status text, as numbers."""
    return {
        k: int(v, 16) for k, _, v in (line.partition(":\t") for line in status.splitlines()) if k[:3] == "Cap"
    }


# --- 3. mounts under /proc ---------------------------------------------------------------


def fake_cap_last_cap(bundle: Bundle, tmp_path: Path, tmpfs: str, file: str) -> int:
    """Add a tmpfs at `tmpfs` and a cap_last_cap of 0 bound at `file` (both /proc/sys however
    spelled), and a payload that prints its capabilities; the index of the tmpfs in mounts."""
    fake = tmp_path / "cap_last_cap"
    fake.write_text("0\n")
    index = len(bundle.config["mounts"])
    bundle.config["mounts"] += [
        {"destination": tmpfs, "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        {"destination": file, "type": "bind", "source": str(fake), "options": ["bind"]},
    ]
    # Without no_new_privs a root payload gets every capability its bounding set holds.
    bundle.process["noNewPrivileges"] = False
    bundle.write("sh", "-c", "cat /proc/self/status")
    return index


def kept_caps(done: subprocess.CompletedProcess[str]) -> str:
    """What a payload that ran says about its capabilities, for a failure message."""
    caps = caps_of(done.stdout)
    return (
        f"the payload ran with CapBnd={caps.get('CapBnd', 0):#x} CapEff={caps.get('CapEff', 0):#x}, "
        f"asked for {RUNC_DEFAULT_CAPS:#x}"
    )


@pytest.mark.parametrize(
    ("tmpfs", "file"),
    [
        ("/proc/sys/kernel", "/proc/sys/kernel/cap_last_cap"),
        ("/proc/../proc/sys", "/proc/../proc/sys/kernel/cap_last_cap"),
        ("/proc//sys/kernel", "/proc//sys/kernel//cap_last_cap"),
        ("//proc/sys/kernel", "//proc/sys/kernel/cap_last_cap"),  # os.path.normpath keeps a leading //
    ],
)
def test_a_mount_inside_proc_is_refused(oci_bundle: Bundle, tmp_path: Path, tmpfs: str, file: str) -> None:
    """Attack: a tmpfs over /proc/sys/kernel (however spelled) with a cap_last_cap of 0: the
    launcher reads it to know which capabilities to drop, so the payload keeps them all."""
    index = fake_cap_last_cap(oci_bundle, tmp_path, tmpfs, file)
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode != 0, f"mounts[{index}] at {tmpfs}: {kept_caps(done)}"
    refusal(done, f"mounts[{index}].destination", "/proc")
    # The same bundle without those mounts runs, with the bounding set it asks for.
    del oci_bundle.config["mounts"][index:]
    oci_bundle.write()
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode == 0, done.stderr
    assert caps_of(done.stdout)["CapBnd"] == RUNC_DEFAULT_CAPS, done.stdout


def test_a_mount_through_a_symlink_to_proc_is_refused(oci_bundle: Bundle, tmp_path: Path) -> None:
    """Attack: the rootfs holds /p -> /proc and the tmpfs goes to /p/sys/kernel. pyctr resolves
    targets inside the rootfs as the container would, so /p/sys/kernel is the container's
    /proc/sys/kernel: refused like the plain spelling (runc checks the resolved path too)."""
    (oci_bundle.rootfs / "p").symlink_to("/proc")
    fake_cap_last_cap(oci_bundle, tmp_path, "/p/sys/kernel", "/p/sys/kernel/cap_last_cap")
    assert os.readlink(oci_bundle.rootfs / "p") == "/proc"
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode != 0, f"/p/sys/kernel: {kept_caps(done)}"
    refusal(done, "/proc")


def test_a_host_directory_bound_over_all_of_proc_is_refused(oci_bundle: Bundle, tmp_path: Path) -> None:
    """Attack: a bind of a host directory (not a procfs) at /proc itself, whose sys/kernel/cap_last_cap
    says 0; a real proc at /realproc serves the launcher's /proc/self and shows what the payload kept."""
    fake = tmp_path / "fakeproc"
    (fake / "sys/kernel").mkdir(parents=True)
    (fake / "sys/kernel/cap_last_cap").write_text("0\n")
    (fake / "self").symlink_to("/realproc/self")
    index = len(oci_bundle.config["mounts"])
    oci_bundle.config["mounts"] += [
        {"destination": "/proc", "type": "bind", "source": str(fake), "options": ["rbind"]},
        {"destination": "/realproc", "type": "proc", "source": "proc"},
    ]
    oci_bundle.process["noNewPrivileges"] = False
    oci_bundle.write("sh", "-c", "cat /realproc/self/status")
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert done.returncode != 0, f"{fake} at /proc: {kept_caps(done)}"
    refusal(done, f"mounts[{index}].destination", "/proc")


def test_a_file_bound_onto_proc_uptime_is_still_allowed(oci_bundle: Bundle, tmp_path: Path) -> None:
    """Not an attack: runc allows binds onto a few /proc files (lxcfs uses them); /proc/uptime works."""
    uptime = tmp_path / "uptime"
    uptime.write_text("12345.67 890.12\n")
    oci_bundle.config["mounts"].append(
        {"destination": "/proc/uptime", "type": "bind", "source": str(uptime), "options": ["bind", "ro"]}
    )
    oci_bundle.write("cat", "/proc/uptime")
    assert ok("run", "--bundle", str(oci_bundle.path), new_id()) == "12345.67 890.12\n"


# --- 8. org.systemd.property.* annotations --------------------------------------------


@pytest.fixture
def host_unit(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A unit of the host that touches a marker when started: (name, marker)."""
    name = f"hostile-{os.urandom(3).hex()}.service"
    marker = tmp_path / "started-by-systemd"
    unit_file = Path("/run/systemd/system", name)
    unit_file.write_text(f"[Service]\nType=oneshot\nExecStart=/bin/touch {marker}\n")
    try:
        systemctl("daemon-reload")
        systemctl("start", name)  # it works: started, it leaves the marker
        assert marker.exists()
        marker.unlink()
        yield name, marker
    finally:
        systemctl("stop", name, check=False)
        systemctl("reset-failed", name, check=False)
        unit_file.unlink()
        systemctl("daemon-reload")


def test_create_refuses_an_annotation_that_starts_a_host_unit(
    oci_bundle: Bundle, host_unit: tuple[str, Path]
) -> None:
    """Attack: org.systemd.property.Wants=['UNIT'] makes the container's scope pull in any unit
    of the host, started by systemd as root along with the container (here one that touches a marker)."""
    name, marker = host_unit
    oci_bundle.config["annotations"] = {"org.systemd.property.Wants": f"['{name}']"}
    oci_bundle.write("sleep", "100")
    cid = new_id()
    done = pyctr("create", "--bundle", str(oci_bundle.path), cid)
    wants = show(f"pyctr-{cid}.scope", "Wants") if done.returncode == 0 else {}
    pyctr("delete", "--force", cid)
    assert not marker.exists(), f"systemd started {name} for the container's scope: {wants}"
    refusal(done, "annotations.org.systemd.property.Wants")


def test_define_refuses_an_annotation_that_adds_a_command(
    units: None, oci_bundle: Bundle, tmp_path: Path
) -> None:
    """Attack: org.systemd.property.ExecStartPre='/bin/touch MARKER' goes into the definition's
    drop-in, so `systemctl start pyctr@NAME` runs the bundle's command on the host as root."""
    marker = tmp_path / "ran-on-the-host"
    oci_bundle.config["annotations"] = {"org.systemd.property.ExecStartPre": f"'/bin/touch {marker}'"}
    oci_bundle.write("true")
    done = pyctr("define", "hostile", str(oci_bundle.path))
    dropin = ""
    if done.returncode == 0:
        dropin = Path(definitions.dropin_path("hostile")).read_text()
        systemctl("start", "pyctr@hostile.service", check=False)
        systemctl("stop", "pyctr@hostile.service", check=False)
        systemctl("reset-failed", "pyctr@hostile.service", check=False)
    assert not marker.exists(), f"systemctl start pyctr@hostile ran ExecStartPre of its drop-in:\n{dropin}"
    refusal(done, "annotations.org.systemd.property.ExecStartPre")
    assert definitions.defined() == [] and not Path(definitions.dropin_path("hostile")).parent.exists()


def test_resource_annotations_still_reach_the_unit(units: None, oci_bundle: Bundle) -> None:
    """Not an attack: MemoryHigh and TimeoutStopUSec are resource settings: create sets them on the
    scope and define writes them into the drop-in."""
    oci_bundle.config["annotations"] = {
        "org.systemd.property.MemoryHigh": f"uint64 {48 << 20}",
        "org.systemd.property.TimeoutStopUSec": "uint64 4000000",
    }
    oci_bundle.write("sleep", "100")
    expected = {"MemoryHigh": str(48 << 20), "TimeoutStopUSec": "4s"}
    cid = new_id()
    ok("create", "--bundle", str(oci_bundle.path), cid)
    try:
        assert show(f"pyctr-{cid}.scope", *expected) == expected
    finally:
        ok("delete", "--force", cid)
    ok("define", "allowed", str(oci_bundle.path))
    assert show("pyctr@allowed.service", *expected) == expected


# --- 10. smaller ones ---------------------------------------------------------------------


def test_a_device_path_leaving_dev_is_refused(oci_bundle: Bundle) -> None:
    """Attack: linux.devices path /dev/../etc/evil passes a "starts with /dev/" check and, once
    normalised, makes a device node (here /dev/null's 1:3) at /etc/evil in the rootfs."""
    oci_bundle.linux["devices"] = [{"path": "/dev/../etc/evil", "type": "c", "major": 1, "minor": 3}]
    oci_bundle.write("true")
    assert (oci_bundle.rootfs / "etc").is_dir() and not os.path.lexists(oci_bundle.rootfs / "etc/evil")
    done = pyctr("run", "--bundle", str(oci_bundle.path), new_id())
    assert not os.path.lexists(oci_bundle.rootfs / "etc/evil"), f"a device node at /etc/evil: {done}"
    refusal(done, "linux.devices[0].path", "below /dev")


def within(seconds: float, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """pyctr ARGS, failing the test if it has not ended after `seconds` (it is killed then)."""
    try:
        return pyctr(*args, input=input, timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pyctr {' '.join(args)} did not end within {seconds:.0f}s")


HUGE_CPUS = "0-99999999"


def test_a_huge_cpu_list_in_config_json_is_refused_quickly(oci_bundle: Bundle) -> None:
    """Attack: linux.resources.cpu.cpus 0-99999999: pyctr builds its CPU mask a bit at a time,
    a hundred million bits, and create never returns."""
    oci_bundle.linux["resources"] = {"cpu": {"cpus": HUGE_CPUS}}
    oci_bundle.write("true")
    refusal(within(20, "create", "--bundle", str(oci_bundle.path), new_id()), "linux.resources.cpu.cpus")


@pytest.fixture
def running(oci_bundle: Bundle) -> Iterator[str]:
    """A running container (`sleep`): its id."""
    cid = new_id()
    oci_bundle.write("sleep", "1000")
    ok("run", "-d", "--bundle", str(oci_bundle.path), cid)
    yield cid
    pyctr("delete", "--force", cid)


def test_a_huge_cpu_list_in_update_is_refused_quickly(running: str) -> None:
    """Attack: the same CPU list through `pyctr update`, as -r JSON on stdin and as --cpuset-cpus."""
    resources = json.dumps({"cpu": {"cpus": HUGE_CPUS}})
    refusal(within(20, "update", "-r", "-", running, input=resources), "cpu.cpus")
    line = refusal(within(20, "update", "--cpuset-cpus", HUGE_CPUS, running))
    assert "--cpuset-cpus" in line or "cpu.cpus" in line, line


NESTED = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_config_json_is_one_line(oci_bundle: Bundle) -> None:
    """Attack: a field of 100000 nested lists: Python's JSON decoder runs out of recursion
    (RecursionError, not ValueError) and pyctr dies with a traceback instead of a one-line error."""
    text = json.dumps(oci_bundle.config)
    (oci_bundle.path / "config.json").write_text(text[:-1] + f', "x-nested": {NESTED}}}')
    assert len((oci_bundle.path / "config.json").read_text()) > 200_000
    refusal(pyctr("create", "--bundle", str(oci_bundle.path), new_id()), "config.json")


def test_deeply_nested_json_for_update_and_exec_is_one_line(running: str, tmp_path: Path) -> None:
    """Attack: the same nesting as `update -r -` on stdin and as `exec -p FILE`."""
    refusal(pyctr("update", "-r", "-", running, input=NESTED))
    (tmp_path / "process.json").write_text(NESTED)
    refusal(pyctr("exec", "-p", str(tmp_path / "process.json"), running))


@pytest.mark.parametrize(
    "sets",
    [
        {"effective": ["CAP_KILL", "CAP_SYS_ADMIN"], "permitted": ["CAP_KILL"]},
        {"inheritable": ["CAP_SYS_ADMIN"]},  # not in the bounding set: capset(2) refuses it
    ],
    ids=["effective-not-permitted", "inheritable-not-bounding"],
)
def test_capabilities_that_cannot_be_applied_fail_create(
    oci_bundle: Bundle, sets: dict[str, list[str]]
) -> None:
    """Bad input: capability sets capset(2) refuses. runc applies them before its init waits for
    start, so create fails; pyctr applies them after, so create and start succeed and the
    container dies before its payload runs, its error lost."""
    defaults = dict(oci_bundle.process["capabilities"])
    oci_bundle.process["capabilities"].update(sets)
    oci_bundle.write("touch", "/payload-ran")
    cid = new_id()
    done = pyctr("create", "--bundle", str(oci_bundle.path), cid)
    if done.returncode == 0:
        started = pyctr("start", cid)
        wait_status(cid, "stopped")
        ran = (oci_bundle.rootfs / "payload-ran").exists()
        pyctr("delete", "--force", cid)
        pytest.fail(
            f"create accepted {sets}; start exited {started.returncode}, then the payload "
            f"{'ran' if ran else 'never ran'}"
        )
    assert "cap" in refusal(done).lower(), done.stderr
    assert not (STATE_ROOT / cid).exists()
    # Applicable sets (runc's defaults) still run.
    oci_bundle.process["capabilities"] = defaults
    oci_bundle.write()
    assert pyctr("run", "--bundle", str(oci_bundle.path), new_id()).returncode == 0


def test_joining_the_hosts_mount_namespace_is_refused(oci_bundle: Bundle) -> None:
    """Attack: a mount namespace joined by path gets the container's root built in it and
    pivoted into; the host's own (/proc/1/ns/mnt) would make the rootfs every host process's
    root and the host's mounts slaves."""
    others = [ns for ns in oci_bundle.linux["namespaces"] if ns["type"] != "mount"]
    oci_bundle.linux["namespaces"] = [*others, {"type": "mount", "path": "/proc/1/ns/mnt"}]
    oci_bundle.write("true")
    host_root = os.stat("/proc/1/root/")
    root_line = next(
        line for line in Path("/proc/1/mountinfo").read_text().splitlines() if line.split()[4] == "/"
    )
    refusal(
        pyctr("run", "--bundle", str(oci_bundle.path), new_id()),
        "/proc/1/ns/mnt is the host's mount namespace",
    )
    assert os.stat("/proc/1/root/").st_ino == host_root.st_ino
    assert root_line in Path("/proc/1/mountinfo").read_text().splitlines()  # propagation unchanged
