"""The Debian package, built from this checkout for the tests that need it.

`dpkg-buildpackage -us -uc -b` runs on a copy of the checkout (it writes into
the tree and next to it). The result is kept in .cache/deb/<hash of the
sources>, inside the checkout, so the package test on this machine and the
install test in the sandbox use one build.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.cli import CHECKOUT

CACHE = CHECKOUT / ".cache" / "deb"
# Debian's own tools, not whatever python3 comes first on the caller's PATH.
BUILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}


class PackageError(Exception):
    pass


def sources() -> list[Path]:
    """The checkout's files, relative to it, as a clean clone would have them
    (tracked or new, not ignored: no build output of an in-tree build)."""
    done = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=CHECKOUT,
        capture_output=True,
        check=True,
    )
    names = sorted(set(done.stdout.decode().split("\0")) - {""})
    return [Path(n) for n in names if (CHECKOUT / n).is_file()]


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f).encode() + b"\0" + (CHECKOUT / f).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def deb() -> Path:
    """The built .deb (building it first if these sources were never built)."""
    files = sources()
    out = CACHE / _digest(files)
    built = sorted(out.glob("pyctr-systemd_*_all.deb"))
    if built:
        return built[0]
    if shutil.which("dpkg-buildpackage", path=BUILD_ENV["PATH"]) is None:
        raise PackageError("dpkg-buildpackage is not installed (tools/install-deps test installs it)")
    with tempfile.TemporaryDirectory(prefix="pyctr-deb-") as tmp:
        tree = Path(tmp, "src")
        for f in files:
            (tree / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(CHECKOUT / f, tree / f)
        done = subprocess.run(
            ["dpkg-buildpackage", "-us", "-uc", "-b"],
            cwd=tree,
            env=BUILD_ENV,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise PackageError(f"dpkg-buildpackage failed:\n{(done.stdout + done.stderr)[-3000:]}")
        shutil.rmtree(CACHE, ignore_errors=True)  # only the newest build is kept
        out.mkdir(parents=True)
        for f in Path(tmp).iterdir():
            if f.is_file():
                shutil.copy2(f, out / f.name)
    return next(out.glob("pyctr-systemd_*_all.deb"))


def changes() -> Path:
    return next(deb().parent.glob("pyctr-systemd_*.changes"))
