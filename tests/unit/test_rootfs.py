import os
import stat
from pathlib import Path

import pytest

from pyctr_systemd import rootfs
from pyctr_systemd.errors import RootfsError

LISTING = [
    "usr/bin/[",
    "bin/sh",
    "bin/ls",
    "sbin/ifconfig",
    "usr/sbin/chroot",
    "bin/busybox",
    "linuxrc",
    "bin/sh",
    "/usr/bin/wc",
]


def test_plan_links_every_applet_once_but_busybox_itself() -> None:
    plan = rootfs.busybox_plan(LISTING)
    assert plan.links == [
        ("usr/bin/[", "/bin/busybox"),
        ("bin/sh", "/bin/busybox"),
        ("bin/ls", "/bin/busybox"),
        ("sbin/ifconfig", "/bin/busybox"),
        ("usr/sbin/chroot", "/bin/busybox"),
        ("usr/bin/wc", "/bin/busybox"),
    ]


def test_plan_has_the_lab_layout() -> None:
    plan = rootfs.busybox_plan([])
    dirs = dict(plan.dirs)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "dev", "sys"):
        assert dirs[d] == 0o755
    assert dirs["tmp"] == 0o1777
    assert dirs["root"] == 0o700
    files = dict(plan.files)
    assert files["etc/passwd"].startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert files["etc/group"].startswith("root:x:0:\n")


def test_apply(tmp_path: Path) -> None:
    fake_busybox = tmp_path / "busybox"
    fake_busybox.write_bytes(b"\x7fELF")
    fake_busybox.chmod(0o755)
    root = tmp_path / "root"
    root.mkdir()
    rootfs.apply(rootfs.busybox_plan(LISTING), str(root), str(fake_busybox))
    assert (root / "bin/busybox").read_bytes() == b"\x7fELF"
    assert os.readlink(root / "bin/sh") == "/bin/busybox"
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert (root / "etc/passwd").read_text().startswith("root:")


def test_resolve(tmp_path: Path) -> None:
    assert rootfs.resolve(None) == ""
    assert rootfs.resolve(str(tmp_path)) == str(tmp_path)
    with pytest.raises(RootfsError, match="no such directory"):
        rootfs.resolve(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(RootfsError, match="no such directory"):
        rootfs.resolve(str(tmp_path / "file"))


def test_default_without_busybox(tmp_path: Path) -> None:
    with pytest.raises(RootfsError, match="busybox-static"):
        rootfs.default(busybox=str(tmp_path / "busybox"), cache=str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
