"""Integration tests: real systemd on the system bus, real kernel, run as root.

tests/run starts them inside the project's sandbox. Every test is checked for
leftovers afterwards: a pyctr unit, a cgroup under pyctr.slice or a new mount
left behind fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from shutil import which as shutil_which
from typing import Any

import pytest

from pyctr_systemd import cgroups, hierarchies, rootfs, state
from tests.cli import CHECKOUT
from tests.mounts import mountpoints


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        # The guest lane's twins (marker vm) run elsewhere: they are not integration tests here.
        if here in Path(str(item.fspath)).parents and item.get_closest_marker("vm") is None:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def systemd_is_running() -> None:
    if not os.path.isdir("/run/systemd/system") or os.geteuid() != 0:
        pytest.fail(
            "integration tests need root and systemd as PID 1: run them with tests/run", pytrace=False
        )
    state = systemctl("is-system-running", check=False).stdout.strip()
    assert state == "running", f"systemd is {state!r}"


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60, check=check)


def show(unit: str, *properties: str) -> dict[str, str]:
    out = systemctl("show", unit, *[f"--property={p}" for p in properties]).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def unit_pids(unit: str) -> list[int]:
    """Host PIDs in the unit's cgroup, read from the layout this machine mounted."""
    group = show(unit, "ControlGroup")["ControlGroup"]
    for mount in cgroups.mounts():
        if mount.key in ("", "name=systemd"):
            procs = Path(mount.path_of(group), "cgroup.procs")
            if procs.exists():
                return [int(p) for p in procs.read_text().split()]
    raise AssertionError(f"no cgroup.procs for {unit}")


def cgroup_file(unit: str, controller: str, v1: str, v2: str) -> str:
    """The content of a controller's file in the unit's cgroup (v1 or v2 name)."""
    group = show(unit, "ControlGroup")["ControlGroup"]
    if not group:
        status = systemctl("status", "--no-pager", "--full", "--lines=30", unit, check=False)
        log = subprocess.run(
            ["journalctl", "--no-pager", "-n", "30", "-u", unit], capture_output=True, text=True
        )
        raise AssertionError(f"{unit} has no cgroup:\n{status.stdout}{status.stderr}{log.stdout}")
    for mount in cgroups.mounts():
        if controller in mount.controllers():
            name = v2 if mount.fstype == "cgroup2" else v1
            return Path(mount.path_of(group), name).read_text().strip()
    raise AssertionError(f"controller {controller} is not mounted")


def container_cgroup_file(pid: int, controller: str, v1: str, v2: str) -> str:
    """A controller's file of the cgroup a process is in, whichever runtime put it there."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            for top in (controllers, f"{controller}"):
                found = Path("/sys/fs/cgroup", top, path.lstrip("/"), v1)
                if found.exists():
                    return found.read_text().strip()
        if controllers == "" and v2 and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return Path("/sys/fs/cgroup", path.lstrip("/"), v2).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for process {pid}")


RUN_LIMITS = ("-m", "64m", "--pids-limit", "50", "--cpus", "0.5")


def assert_run_limits(pid: int) -> str:
    """What an engine's `run` with RUN_LIMITS put in the container's cgroup, v1 or v2; the
    CPU quota as the cgroup file shows it."""
    assert container_cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max") == str(64 << 20)
    assert container_cgroup_file(pid, "pids", "pids.max", "pids.max") == "50"
    quota = container_cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
    assert quota == ("50000 100000" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "50000")
    return quota


def wait_until(read: Callable[[], object], wanted: object, what: str, within: float = 30) -> None:
    """Poll read() until it gives `wanted`; fail saying what it gave last."""
    deadline = time.monotonic() + within
    while (found := read()) != wanted:
        assert time.monotonic() < deadline, f"{what} is {found!r}, not {wanted!r} after {within:.0f} s"
        time.sleep(0.1)


def fetch(url: str, within: float = 20) -> bytes:
    """The body at `url` once something answers there (a port an engine has just published)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return bytes(reply.read())
        except OSError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


class EngineClient:
    """What docker's and podman's command lines share: `inspect --format`, and waiting on it."""

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def inspect(self, name: str, template: str) -> str:
        return self("inspect", "--format", template, name).stdout.strip()

    def wait_for(self, name: str, template: str, wanted: str, within: float = 30) -> None:
        wait_until(lambda: self.inspect(name, template), wanted, f"{name}: {template}", within)


def wait_for_line(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != expected:
        process.kill()
        process.wait(timeout=30)
        err = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"expected {expected!r} from the container, got {line!r}; stderr: {err}")


# Units the tests make: pyctr's own, OCI containers named by cgroupsPath, podman's.
UNIT_PATTERNS = ("pyctr-*", "pyctr@*", "oci-*", "libpod-*", "docker-*", "ctr-*", "cri-containerd-*")
STATE_ROOT = Path("/run/pyctr")


def _our_units() -> list[str]:
    out = systemctl("list-units", "--all", "--plain", "--no-legend", *UNIT_PATTERNS).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _slice_children() -> list[str]:
    found = []
    for mount in hierarchies.unmanaged(cgroups.mounts()):  # container groups pyctr and runc make
        for below, dirs, _ in os.walk(mount.mountpoint):
            found += [
                os.path.join(below, d)
                for d in dirs
                if d.endswith(".scope") and not d.startswith("libpod-conmon-")
            ]
    for mount in cgroups.mounts():
        for name in ("pyctr.slice", "machine.slice", "pyctr"):
            top = Path(mount.mountpoint, name)
            if top.is_dir():
                # podman itself leaves its conmon's cgroups in the v1 hierarchies
                # systemd does not manage (cpuacct, freezer), whatever the runtime.
                found += [
                    str(p) for p in top.iterdir() if p.is_dir() and not p.name.startswith("libpod-conmon-")
                ]
    return found


def _machines() -> list[str]:
    if not shutil_which("machinectl"):
        return []
    out = subprocess.run(["machinectl", "list", "--no-legend"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _state_dirs() -> list[str]:
    if not STATE_ROOT.is_dir():
        return []
    # The root's claim lock stays, as the files in /run/lock do.
    return sorted(str(p) for p in STATE_ROOT.iterdir() if p.name != state.CLAIM_LOCK)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 0:
        pids.add(pid)
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(status.split("PPid:")[1].split()[0])
    return pids


def _is_pyctr(argv: list[bytes]) -> bool:
    """python3 -m pyctr_systemd..., a `pyctr` script (the package's runs as python3 -IS
    /usr/bin/pyctr), or a container's launcher (python3 -I -S -c CODE pyctr-init ...)."""
    return any(arg.startswith(b"pyctr_systemd") or os.path.basename(arg) == b"pyctr" for arg in argv[:3]) or (
        b"pyctr-init" in argv[:6]
    )


def _pyctr_processes() -> dict[int, str]:
    """pyctr processes other than the tests' own: a launcher left waiting, say."""
    found, ours = {}, _ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if _is_pyctr(argv):
            found[int(entry.name)] = b" ".join(argv).decode(errors="replace")
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    mounts = mountpoints()
    yield
    units = _our_units()
    deadline = time.monotonic() + 5
    while any(u.startswith("libpod-conmon-") for u in units) and time.monotonic() < deadline:
        time.sleep(0.1)  # podman's conmon may outlive `podman run` by a moment
        units = _our_units()
    processes, deadline = _pyctr_processes(), time.monotonic() + 10
    while processes and time.monotonic() < deadline:
        time.sleep(0.1)  # a pyctr that has just returned may still be reaping, or handing over
        processes = _pyctr_processes()
    for pid in processes:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    groups, new_mounts = _slice_children(), mountpoints() - mounts
    states, machines = _state_dirs(), _machines()
    for unit in units:  # clean up so one leak does not fail every later test
        systemctl("kill", "--signal=KILL", unit, check=False)
        systemctl("stop", unit, check=False)
        systemctl("reset-failed", unit, check=False)
    for directory in states:
        subprocess.run(["rm", "-rf", directory], check=False)
    for group in sorted(groups, reverse=True):  # in the sandbox, cpuset's hierarchy is the host's
        if group.endswith(".scope"):
            subprocess.run(["rmdir", group], check=False, capture_output=True)
    assert units == [], f"units left behind: {units}"
    assert processes == {}, f"pyctr processes left behind: {processes}"
    assert states == [], f"container state left behind: {states}"
    assert machines == [], f"machine registrations left behind: {machines}"
    assert groups == [], f"cgroups left behind: {groups}"
    assert new_mounts == set(), f"mounts left behind: {new_mounts}"


@pytest.fixture(scope="session")
def default_rootfs() -> str:
    return rootfs.default()


@pytest.fixture
def marked_rootfs(tmp_path: Path) -> tuple[str, str]:
    """A fresh busybox rootfs with a marker file at its top: (path, marker text)."""
    root = tmp_path / "rootfs"
    root.mkdir()
    listing = subprocess.run([rootfs.BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    rootfs.apply(rootfs.busybox_plan(listing.stdout.splitlines()), str(root), rootfs.BUSYBOX)
    marker = f"you are here {os.urandom(4).hex()}"
    (root / "YOU-ARE-HERE").write_text(marker + "\n")
    return str(root), marker


class Bundle:
    """An OCI bundle in a temporary directory: a busybox rootfs and runc's default
    config.json (no terminal), to be changed through .config before .write()."""

    def __init__(self, path: Path) -> None:
        from pyctr_systemd import bundle

        self.path = path
        root = path / "rootfs"
        root.mkdir(parents=True)
        listing = subprocess.run([rootfs.BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
        rootfs.apply(rootfs.busybox_plan(listing.stdout.splitlines()), str(root), rootfs.BUSYBOX)
        self.rootfs = root
        self.config = json.loads(bundle.render_spec(False))
        self.config["process"]["terminal"] = False
        self.config["root"]["readonly"] = False

    def write(self, *args: str) -> Bundle:
        """Write config.json; args, if given, become process.args."""
        if args:
            self.config["process"]["args"] = list(args)
        (self.path / "config.json").write_text(json.dumps(self.config))
        return self

    @property
    def process(self) -> dict[str, Any]:
        return self.config["process"]  # type: ignore[no-any-return]

    @property
    def linux(self) -> dict[str, Any]:
        return self.config["linux"]  # type: ignore[no-any-return]


def image_tarball(directory: Path) -> Path:
    """A busybox root as a tarball, for an engine's `import` (no registry is reachable)."""
    image = Bundle(directory / "image")
    tarball = directory / "busybox.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(image.rootfs, arcname=".")
    return tarball


def oci_archive(directory: Path, name: str, command: list[str]) -> Path:
    """The busybox root as an OCI image archive named `name` (annotation containerd's import
    reads), whose default command is `command`: an image for containerd and the CRI."""

    def blob(data: bytes, media: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (directory / "layout/blobs/sha256").mkdir(parents=True, exist_ok=True)
        (directory / "layout/blobs/sha256" / digest).write_bytes(data)
        return {"mediaType": media, "digest": f"sha256:{digest}", "size": len(data)}

    layer = image_tarball(directory).read_bytes()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": command,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
        "layers": [blob(layer, "application/vnd.oci.image.layer.v1.tar")],
    }
    entry = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    entry["annotations"] = {"io.containerd.image.name": name}
    (directory / "layout/index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (directory / "layout/oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    archive = directory / "image.oci.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(directory / "layout", arcname=".")
    return archive


def runtime_wrapper(directory: Path) -> Path:
    """An executable `pyctr` that runs this checkout's pyctr: what an engine is configured
    with as a runtime (podman names the runtime by the file's name)."""
    wrapper = directory / "pyctr"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={CHECKOUT} exec {sys.executable} -m pyctr_systemd "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def oci_bundle(tmp_path: Path) -> Bundle:
    return Bundle(tmp_path / "bundle")


UNITS = ("pyctr.slice", "pyctr@.service")
WRAPPER = Path("/usr/local/bin/pyctr")  # the unit's ExecStart=pyctr finds it before /usr/bin


@pytest.fixture
def units() -> Iterator[None]:
    """pyctr's units installed, and `pyctr` on systemd's search path running this checkout."""
    import shutil
    import sys

    from pyctr_systemd import definitions
    from tests.cli import CHECKOUT, pyctr

    for unit in UNITS:
        shutil.copy(CHECKOUT / "units" / unit, Path(definitions.UNIT_DIR) / unit)
    WRAPPER.write_text(f'#!/bin/sh\nPYTHONPATH={CHECKOUT} exec {sys.executable} -m pyctr_systemd "$@"\n')
    WRAPPER.chmod(0o755)
    systemctl("daemon-reload")
    yield
    for name in definitions.defined():
        pyctr("undefine", name)
    for unit in UNITS:
        (Path(definitions.UNIT_DIR) / unit).unlink()
    WRAPPER.unlink()
    systemctl("daemon-reload")
