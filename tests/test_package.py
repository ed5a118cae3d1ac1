"""The Debian package: it builds, holds what a user needs, and lintian finds nothing."""

from __future__ import annotations

import subprocess

from tests import package


def test_the_package_holds_the_runtime_its_units_docs_and_completion() -> None:
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(package.deb())], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
    expected = {
        "/usr/bin/pyctr",
        "/usr/lib/python3/dist-packages/pyctr_systemd/cli/app.py",
        "/lib/systemd/system/pyctr.slice",
        "/lib/systemd/system/pyctr@.service",
        "/usr/share/pyctr-systemd/templates/config.json.j2",
        "/usr/share/pyctr-systemd/templates/dropin.conf.j2",
        "/usr/share/bash-completion/completions/pyctr",
        "/usr/share/man/man1/pyctr.1.gz",
        "/usr/share/doc/pyctr-systemd/copyright",
    }
    verbs = (
        "run",
        "spec",
        "create",
        "start",
        "state",
        "list",
        "ps",
        "kill",
        "delete",
        "exec",
        "define",
        "logs",
    )
    expected |= {f"/usr/share/man/man1/pyctr-{verb}.1.gz" for verb in verbs}
    assert expected <= paths, sorted(expected - paths)
    fields = subprocess.run(
        ["dpkg-deb", "--field", str(package.deb()), "Depends", "Recommends", "Suggests"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("python3-dbus", "python3-click", "python3-jinja2", "busybox-static"):
        assert name in fields
    assert "Recommends: systemd-container" in fields and "Suggests: podman" in fields


def test_lintian_reports_no_errors_or_warnings() -> None:
    done = subprocess.run(
        ["lintian", "--fail-on", "error,warning", str(package.changes())],
        env=package.BUILD_ENV,
        capture_output=True,
        text=True,
    )
    complaints = [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
