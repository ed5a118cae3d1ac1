"""Paths inside a rootfs, resolved by file descriptor as if the rootfs were /: with openat2's
RESOLVE_IN_ROOT and with the component-by-component walk used where the kernel lacks it."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyctr_systemd.init import rootfs

Resolver = Callable[[Path, str], str]


@pytest.fixture(params=["openat2", "walk"])
def resolve(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    if request.param == "walk":
        monkeypatch.setattr(rootfs, "_openat2", False)

    def resolve(root: Path, path: str) -> str:
        top = os.open(root, os.O_PATH | os.O_DIRECTORY)
        try:
            fd = rootfs.open_in(top, path)
        finally:
            os.close(top)
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)

    yield resolve


@pytest.fixture
def root(tmp_path: Path) -> Path:
    top = tmp_path / "rootfs"
    for d in ("usr/lib", "etc", "a/b", "data", "proc/self"):
        (top / d).mkdir(parents=True)
    (top / "etc" / "passwd").write_text("")
    return top


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/", ""),
        ("", ""),
        ("/etc", "etc"),
        ("/etc/passwd", "etc/passwd"),
        ("etc/passwd", "etc/passwd"),
        ("/a/./b//", "a/b"),
        ("/a/b/../../etc", "etc"),
        ("/../../etc", "etc"),
        ("/a/../../../..", ""),
    ],
)
def test_plain_paths(root: Path, resolve: Resolver, path: str, inside: str) -> None:
    assert resolve(root, path) == (f"{root}/{inside}" if inside else str(root))


def test_a_missing_path_is_not_found(root: Path, resolve: Resolver) -> None:
    with pytest.raises(FileNotFoundError):
        resolve(root, "/missing/dir/x")


def test_absolute_symlinks_stay_in_the_root(root: Path, resolve: Resolver) -> None:
    (root / "host").symlink_to("/etc")
    (root / "up").symlink_to("/")
    assert resolve(root, "/host/passwd") == f"{root}/etc/passwd"
    assert resolve(root, "/up/etc") == f"{root}/etc"
    assert resolve(root, "/up") == str(root)


def test_relative_symlinks(root: Path, resolve: Resolver) -> None:
    (root / "usr" / "lib64").symlink_to("lib")
    (root / "lib").symlink_to("usr/lib")
    assert resolve(root, "/usr/lib64") == f"{root}/usr/lib"
    assert resolve(root, "/lib") == f"{root}/usr/lib"


def test_dotdot_symlinks_never_escape(root: Path, resolve: Resolver) -> None:
    (root / "a" / "b" / "out").symlink_to("../../../../../../etc")
    (root / "a" / "far").symlink_to("../../../../..")
    assert resolve(root, "/a/b/out/passwd") == f"{root}/etc/passwd"
    assert resolve(root, "/a/far/data") == f"{root}/data"


def test_dotdot_after_a_symlink_goes_up_from_its_target(root: Path, resolve: Resolver) -> None:
    (root / "link").symlink_to("/a/b")
    assert resolve(root, "/link/..") == f"{root}/a"


def test_chained_symlinks_and_a_dangling_one(root: Path, resolve: Resolver) -> None:
    (root / "l1").symlink_to("l2")
    (root / "l2").symlink_to("/data")
    (root / "dangling").symlink_to("/nowhere/at/all")
    assert resolve(root, "/l1") == f"{root}/data"
    with pytest.raises(FileNotFoundError):
        resolve(root, "/dangling")


def test_a_chain_of_40_resolves_and_41_is_a_loop(root: Path, resolve: Resolver) -> None:
    for i in range(41):
        (root / f"s{i}").symlink_to(f"s{i + 1}")
    (root / "s41").mkdir()
    assert resolve(root, "/s1") == f"{root}/s41"
    with pytest.raises(OSError) as e:
        resolve(root, "/s0")
    assert e.value.errno == errno.ELOOP


def test_symlink_loops_raise(root: Path, resolve: Resolver) -> None:
    (root / "self").symlink_to("self")
    (root / "ping").symlink_to("/pong")
    (root / "pong").symlink_to("ping")
    for path in ("/self", "/ping/x"):
        with pytest.raises(OSError) as e:
            resolve(root, path)
        assert e.value.errno == errno.ELOOP


def test_magic_links_are_not_followed(root: Path, resolve: Resolver, tmp_path: Path) -> None:
    # A /proc in the rootfs (the container's, once mounted) has links like fd/N to anything.
    (tmp_path / "secret").write_text("host")
    fd = os.open(tmp_path / "secret", os.O_RDONLY)
    try:
        (root / "fdlink").symlink_to(f"/proc/self/fd/{fd}")
        with pytest.raises(FileNotFoundError):  # /proc here is the rootfs's own, empty
            resolve(root, "/fdlink")
    finally:
        os.close(fd)


def test_results_stay_under_the_root(root: Path, resolve: Resolver) -> None:
    (root / "x").symlink_to("/../../../..")
    (root / "etc" / "y").symlink_to("../../x/../../etc/../..")
    for path in ("/x", "/etc/y", "/../x/../etc"):
        result = resolve(root, path)
        assert result == str(root) or result.startswith(f"{root}/")


@pytest.mark.parametrize("method", ["openat2", "walk"])
def test_make_dir_makes_a_dangling_symlinks_target_inside(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    if method == "walk":
        monkeypatch.setattr(rootfs, "_openat2", False)
    outside = tmp_path / "host-dir"
    (root / "vol").symlink_to(outside)  # an absolute path that, on the host, is a real place
    top = rootfs.Root(str(root))
    try:
        os.close(top.make_dir("/vol/sub/dir"))
        os.close(top.make_file("/etc/new/file"))
    finally:
        top.close()
    assert not outside.exists()
    assert (root / str(outside).lstrip("/") / "sub" / "dir").is_dir()
    assert (root / "etc" / "new" / "file").is_file()


def test_no_symlinks_refuses_any(root: Path) -> None:
    (root / "proc2").symlink_to("/etc")
    top = rootfs.Root(str(root))
    try:
        with pytest.raises(OSError) as e:
            top.make_dir("/proc2", no_symlinks=True)
        assert e.value.errno == errno.ELOOP
        os.close(top.make_dir("/proc", no_symlinks=True))
    finally:
        top.close()
