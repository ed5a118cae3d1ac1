"""A Debian 12 guest whose PID 1 is systemd on pure cgroup v2, for the tests' v2 lane.

Our machines run cgroup v1 hybrid; Debian and every current distribution boot
the unified hierarchy. This builds, once per set of inputs, a bookworm image
from Debian packages only (debootstrap, the distribution kernel, an initramfs
of our own that loads virtio, ext4 and 9p), boots it under qemu's software
emulation (the machines' /dev/kvm cannot run a stock kernel), shares this
checkout into the guest at the same path with virtio-9p, runs one shell command
there as root and brings back its output and status.

    python3 -m tests.vm.guest 'CMD'     boot, run CMD in the checkout, exit with its status
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tests.mounts import mountpoints

CHECKOUT = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/pyctr-test-vm")
MIRROR = "http://deb.debian.org/debian"
BUSYBOX = "/bin/busybox"  # busybox-static: the initramfs needs no libraries
PACKAGES = [
    # a bootable system
    "systemd",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "linux-image-amd64",
    # what pyctr and its tests need in it
    "python3",
    "python3-dbus",
    "python3-click",
    "python3-jinja2",
    "python3-seccomp",
    "busybox-static",
    "util-linux",
    "procps",
    "python3-pytest",
    "python3-pytest-timeout",
    "strace",
]
# Installed by apt in a second step: debootstrap fails configuring
# golang-github-containers-common (podman's) among its base packages.
APT_PACKAGES = ["podman", "crun", "runc", "systemd-container"]
# The engines' tests: docker and containerd, the CRI's client (tools/install-deps has the same).
APT_PACKAGES += ["docker.io", "containerd", "containernetworking-plugins", "iptables", "iproute2"]
# Debian's kernel has AppArmor on, and docker then wants apparmor_parser for its profile.
APT_PACKAGES += ["apparmor"]
APT_PACKAGES += ["python3-grpcio", "python3-protobuf", "protobuf-compiler", "protobuf-compiler-grpc"]
# Their own services stay off: the tests start daemons of their own, and the emulated CPU
# has no time for others.
MASKED_UNITS = ["docker.service", "docker.socket", "containerd.service"]
# Loaded by our initramfs, dependencies first (modules.dep adds what is missing).
# ext4 wants crc32c only as a soft dependency, which modules.dep does not list.
MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "9pnet_virtio", "9p"]
KERNEL_ARGS = (
    "root=/dev/vda rw console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 systemd.firstboot=off"
)
QEMU = [
    "qemu-system-x86_64",
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "2048",
    "-nodefaults",
    "-display",
    "none",
    "-no-reboot",
    "-nic",
    "none",
]
NINEP = "trans=virtio,version=9p2000.L,msize=262144"
SUITE = "bookworm"
# The lane's budget is 15 minutes of a CI run; these bound a hang so that CI
# (30 minutes, with the other lanes) still ends with the reason. Measured
# here: a build takes about 2.5 minutes, the boot and the tests about 11.
BUILD_TIMEOUT = 420
BOOT_TIMEOUT = 840

# The guest's side: a service that waits for the system to be up, mounts the
# shares, runs the command and powers off. Type=simple: a oneshot would hold up
# `systemctl is-system-running --wait`, which this waits for.
JOB_UNIT = """\
[Unit]
Description=the test lane job: run /run/share/cmd.sh, then power off
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/test-lane-job
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""
JOB_SCRIPT = f"""\
#!/bin/sh
# The checkout's path comes on the kernel command line (pyctr.checkout=...).
checkout=$(sed -n 's/.*pyctr.checkout=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
mkdir -p /run/share "$checkout"
mount -t 9p -o {NINEP} share /run/share
mount -t 9p -o {NINEP} checkout "$checkout"
systemctl is-system-running --wait >/run/share/state 2>&1
systemctl --failed --no-legend --plain >>/run/share/state 2>&1
export HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
cd "$checkout" && sh /run/share/cmd.sh >/run/share/output 2>&1 </dev/null
echo $? >/run/share/status
sync
systemctl poweroff
"""
INIT = """\
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "initramfs: insmod $m failed"; done
for i in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 -o rw /dev/vda /root || { echo "initramfs: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys /dev
exec switch_root /root /sbin/init
"""


class GuestError(Exception):
    pass


@contextlib.contextmanager
def cached_image(cache: Path = CACHE) -> Iterator[Path]:
    """The directory holding vmlinuz, initrd.img and root.ext4, built if missing,
    and held (a shared lock) while the caller boots it.

    Named by what goes into it: this file (the recipe: packages, guest
    service, initramfs), the host's busybox (the initramfs's shell) and the
    Debian release the packages come from, so a change to any of them, a
    point release included, builds a new image; the others are then removed.
    Offline, the newest image of this recipe serves.
    """
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # no other lane removes it while a guest runs on it
        yield _image(cache, lock)


def _image(cache: Path, lock: IO[str]) -> Path:
    recipe = hashlib.sha256(Path(__file__).read_bytes() + Path(BUSYBOX).read_bytes()).hexdigest()[:16]
    release = _release()
    if release is None:
        built = sorted(cache.glob(f"{recipe}-*/root.ext4"), key=lambda p: p.stat().st_mtime)
        if built:
            return built[-1].parent
        release = "unknown"
    target = cache / f"{recipe}-{hashlib.sha256(release.encode()).hexdigest()[:8]}"
    if (target / "root.ext4").exists():
        return target
    fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, and no guest running on what goes
    try:
        if not (target / "root.ext4").exists():
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
            try:
                _build(work, time.monotonic() + BUILD_TIMEOUT)
                os.rename(work, target)
            finally:
                _remove(work)
            for old in cache.iterdir():
                if old.name not in (".lock", target.name):
                    _remove(old)
    finally:
        fcntl.flock(lock, fcntl.LOCK_SH)
    return target


def _remove(path: Path) -> None:
    """rmtree, after unmounting what a stopped debootstrap left mounted below (proc, sys, dev)."""
    for mountpoint in sorted((m for m in mountpoints() if m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "--lazy", mountpoint], check=False)
    shutil.rmtree(path, ignore_errors=True)


def _release() -> str | None:
    """Version and Date of the suite's Release file, or None when the mirror is out of reach."""
    request = urllib.request.Request(f"{MIRROR}/dists/{SUITE}/InRelease")
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            head = reply.read(2048).decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    fields = [line for line in head.splitlines() if line.startswith(("Version:", "Date:"))]
    return " ".join(fields) or None


def _build(work: Path, deadline: float) -> None:
    root = work / "rootfs"
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            MIRROR,
        ],
        "debootstrap",
        deadline,
    )
    apt = "apt-get -q -o Dpkg::Use-Pty=0"
    install = (
        f"DEBIAN_FRONTEND=noninteractive {apt} install -y --no-install-recommends {' '.join(APT_PACKAGES)}"
    )
    _run(
        [
            "unshare",
            "--mount",
            "--propagation=private",
            "sh",
            "-c",
            f'mount -t proc proc "$1/proc" && chroot "$1" sh -c "{apt} update && {install} && {apt} clean"',
            "sh",
            str(root),
        ],
        "apt-get install in the guest",
        deadline,
    )
    _configure(root)
    kernel = max((root / "lib/modules").iterdir(), key=lambda p: p.name)
    shutil.copy(root / "boot" / f"vmlinuz-{kernel.name}", work / "vmlinuz")
    _initramfs(kernel, work / "initrd.img")
    _run(
        ["mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(work / "root.ext4"), "3G"],
        "mkfs.ext4",
        deadline,
    )
    shutil.rmtree(root)


def _configure(root: Path) -> None:
    (root / "etc/hostname").write_text("pyctr-vm\n")
    (root / "etc/machine-id").write_text(hashlib.md5(b"pyctr-vm").hexdigest() + "\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    job = root / "usr/local/sbin/test-lane-job"
    job.write_text(JOB_SCRIPT)
    job.chmod(0o755)
    (root / "etc/systemd/system/test-lane-job.service").write_text(JOB_UNIT)
    for unit in MASKED_UNITS:
        masked = root / "etc/systemd/system" / unit
        masked.unlink(missing_ok=True)
        masked.symlink_to("/dev/null")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "test-lane-job.service").symlink_to("/etc/systemd/system/test-lane-job.service")


def modules_in_order(modules_dep: str, builtin: str, wanted: list[str]) -> list[tuple[str, str]]:
    """(name, path) of the modules to load for `wanted`, dependencies first.

    Reads modules.dep and modules.builtin of the guest's kernel; built-in
    modules need no loading.
    """

    def name(path: str) -> str:
        return os.path.basename(path).split(".ko")[0].replace("-", "_")

    deps = {}
    for line in modules_dep.splitlines():
        path, _, rest = line.partition(":")
        deps[name(path)] = (path, [name(d) for d in rest.split()])
    builtins = {name(line) for line in builtin.split()}
    order: list[tuple[str, str]] = []

    def visit(module: str) -> None:
        if module in builtins or any(module == m for m, _ in order):
            return
        if module not in deps:
            raise GuestError(f"kernel module {module} is neither built in nor in modules.dep")
        path, needs = deps[module]
        for need in needs:
            visit(need)
        order.append((module, path))

    for module in wanted:
        visit(module)
    return order


def _initramfs(kernel: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        for d in ("bin", "dev", "proc", "sys", "root", "modules"):
            (top / d).mkdir()
        shutil.copy(BUSYBOX, top / "bin/busybox")  # busybox-static: no libraries needed
        order = modules_in_order(
            (kernel / "modules.dep").read_text(), (kernel / "modules.builtin").read_text(), MODULES
        )
        for module, path in order:
            data = (kernel / path).read_bytes()
            (top / "modules" / f"{module}.ko").write_bytes(
                lzma.decompress(data) if path.endswith(".xz") else data
            )
        (top / "modules/order").write_text("".join(f"{m}\n" for m, _ in order))
        (top / "init").write_text(INIT)
        (top / "init").chmod(0o755)
        files = subprocess.run(["find", "."], cwd=top, capture_output=True, check=True).stdout
        cpio = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=top, input=files, capture_output=True, check=True
        ).stdout
        out.write_bytes(subprocess.run(["gzip", "-1"], input=cpio, capture_output=True, check=True).stdout)


def _run(argv: list[str], what: str, deadline: float) -> None:
    # A session of its own, so that a timeout stops the step's children too.
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as step:
        try:
            output, _ = step.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(step.pid, signal.SIGKILL)
            step.wait()
            raise GuestError(
                f"building the guest image took over {BUILD_TIMEOUT} s; stopped in {what}"
            ) from None
    if step.returncode != 0:
        tail = "\n".join(output.splitlines()[-20:])
        raise GuestError(f"building the guest image: {what} failed ({step.returncode}):\n{tail}")


class Result:
    def __init__(self, status: int, output: str, seconds: float) -> None:
        self.status, self.output, self.seconds = status, output, seconds


def run(
    command: str, share: Path, timeout: float = BOOT_TIMEOUT, img: Path | None = None, qemu: str = QEMU[0]
) -> Result:
    """Boot the guest, run `command` (sh) in the checkout as root, power off.

    `share` is a host directory the guest sees at /run/share: the command may
    leave files there (test reports). The disk is opened with snapshot=on, so
    every boot starts from the same image. `img` and `qemu` let the lane's own
    tests stand in for the image and the emulator.
    """
    if img is None:
        with cached_image() as cached:
            return run(command, share, timeout, cached, qemu)
    (share / "cmd.sh").write_text(command + "\n")
    console = share / "console.log"
    started = time.monotonic()
    try:
        done = subprocess.run(
            [
                qemu,
                *QEMU[1:],
                "-serial",
                f"file:{console}",
                "-kernel",
                str(img / "vmlinuz"),
                "-initrd",
                str(img / "initrd.img"),
                "-append",
                f"{KERNEL_ARGS} pyctr.checkout={CHECKOUT}",
                "-drive",
                f"file={img / 'root.ext4'},format=raw,if=virtio,snapshot=on",
                "-virtfs",
                f"local,path={CHECKOUT},mount_tag=checkout,security_model=passthrough,id=checkout",
                "-virtfs",
                f"local,path={share},mount_tag=share,security_model=passthrough,id=share",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        ended = f"qemu exit {done.returncode}"
        qemu_errors = done.stderr
    except subprocess.TimeoutExpired as e:  # run() has killed it
        ended = f"qemu stopped after {timeout:.0f} s"
        qemu_errors = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    seconds = time.monotonic() - started
    status = share / "status"
    if not status.exists():
        state = (share / "state").read_text() if (share / "state").exists() else "(never reached)"
        tail = "\n".join(console.read_text(errors="replace").splitlines()[-40:]) if console.exists() else ""
        raise GuestError(
            f"the guest did not run the command ({ended}, {seconds:.0f} s)\n"
            f"{qemu_errors}system state: {state}\nlast lines of the guest's console:\n{tail}"
        )
    output = (share / "output").read_text(errors="replace")
    return Result(int(status.read_text()), output, seconds)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as share:
        try:
            result = run(argv[0], Path(share))
        except GuestError as e:
            print(f"vm: {e}", file=sys.stderr)
            return 125
    print(result.output, end="")
    print(f"vm: status {result.status} after {result.seconds:.0f} s", file=sys.stderr)
    return result.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
