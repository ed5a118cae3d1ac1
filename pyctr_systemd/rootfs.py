"""Root filesystems: a user's directory, or the default one built from busybox-static.

The default rootfs is what the lab's makechroot script makes by hand: busybox,
a link per applet, /etc/passwd and /etc/group, empty /proc, /dev, /sys and
/tmp. It is built once per busybox binary and cached under /var/lib/pyctr, in
a directory named after that binary, so an upgrade never pulls files from
under a running container.
"""

from __future__ import annotations

import os

from pyctr_systemd.errors import RootfsError

BUSYBOX = "/bin/busybox"
CACHE = "/var/lib/pyctr/rootfs"
APPLET_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


class Plan:
    """What to create under the new root: directories (with modes), links, files."""

    def __init__(self) -> None:
        self.dirs: list[tuple[str, int]] = []
        self.links: list[tuple[str, str]] = []  # (path, target)
        self.files: list[tuple[str, str]] = []  # (path, content)


def busybox_plan(applets: list[str]) -> Plan:
    """The default rootfs for `busybox --list-full` output (paths like usr/bin/awk)."""
    plan = Plan()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "dev", "sys"):
        plan.dirs.append((d, 0o700 if d == "root" else 0o755))
    plan.dirs.append(("tmp", 0o1777))
    seen = set()
    for applet in applets:
        applet = applet.strip().lstrip("/")
        # busybox lists itself (bin/busybox); linuxrc is an initrd entry point.
        if os.path.dirname(applet) not in APPLET_DIRS or applet == "bin/busybox":
            continue
        if applet not in seen:
            seen.add(applet)
            plan.links.append((applet, "/bin/busybox"))
    plan.files.extend([("etc/passwd", PASSWD), ("etc/group", GROUP)])
    return plan


def apply(plan: Plan, root: str, busybox: str) -> None:
    import shutil

    for path, mode in plan.dirs:
        os.mkdir(os.path.join(root, path))
        os.chmod(os.path.join(root, path), mode)
    shutil.copy2(busybox, os.path.join(root, "bin/busybox"))
    for path, target in plan.links:
        os.symlink(target, os.path.join(root, path))
    for path, content in plan.files:
        with open(os.path.join(root, path), "w") as f:
            f.write(content)


def default(busybox: str = BUSYBOX, cache: str = CACHE) -> str:
    """The default rootfs, built on first use."""
    try:
        st = os.stat(busybox)
    except FileNotFoundError:
        raise RootfsError(f"{busybox} is missing: install busybox-static for the default rootfs") from None
    path = os.path.join(cache, f"busybox-{st.st_size}-{st.st_mtime_ns}")
    if not os.path.isdir(path):
        _build(path, busybox)
    return path


def _build(path: str, busybox: str) -> None:
    # Only the first run builds; keep these imports off the start path.
    import shutil
    import subprocess
    import tempfile

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        listing = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
        tmp = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(path))
    except (OSError, subprocess.CalledProcessError) as e:
        raise RootfsError(f"cannot build the default rootfs in {path}: {e}") from None
    try:
        os.chmod(tmp, 0o755)
        apply(busybox_plan(listing.splitlines()), tmp, busybox)
        os.rename(tmp, path)  # atomic; a concurrent first run may have won
    except OSError as e:
        if not os.path.isdir(path):
            raise RootfsError(f"cannot build the default rootfs in {path}: {e}") from None
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)


def resolve(arg: str | None) -> str:
    """The rootfs directory for the ROOTFS argument; "" stands for the default,
    which is built only once pyctr knows it can start a container."""
    if arg is None:
        return ""
    path = os.path.abspath(arg)
    if not os.path.isdir(path):
        raise RootfsError(f"rootfs {arg}: no such directory")
    return path
