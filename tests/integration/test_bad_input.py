"""Bad input of every kind: one line naming the problem, non-zero, nothing left behind.

(The fixture nothing_left_behind checks units, cgroups, mounts and state after each.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import CHECKOUT, pyctr, start_pyctr
from tests.integration.conftest import Bundle, wait_for_line


def one_line(result: subprocess.CompletedProcess[str], message: str) -> str:
    assert result.returncode == 125, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"pyctr: {message}"), result.stderr
    return result.stderr


def test_unknown_rootfs(tmp_path: Path) -> None:
    one_line(
        pyctr("run", str(tmp_path / "nope"), "--", "true"), f"rootfs {tmp_path / 'nope'}: no such directory"
    )


@pytest.mark.parametrize("size", ["64X", "lots", "", "1.2.3M"])
def test_malformed_size(size: str) -> None:
    one_line(pyctr("run", "--memory", size, "--", "true"), f"invalid size for --memory: {size!r}")


@pytest.mark.parametrize("name", ["-bad", "has space", "a/b", "x" * 200, "ünï"])
def test_bad_name(name: str) -> None:
    one_line(pyctr("run", "--name", name, "--", "true"), "invalid container name")


def test_duplicate_name_is_refused_and_the_first_runs_on() -> None:
    first = start_pyctr("run", "--name", "twin", "--", "sh", "-c", "echo ready; read x; echo still here")
    try:
        wait_for_line(first, "ready")
        one_line(
            pyctr("run", "--name", "twin", "--", "true"),
            "container name is already in use: pyctr-twin.scope is active",
        )
    finally:
        out, _ = first.communicate("\n", timeout=30)
    assert first.returncode == 0
    assert out == "still here\n"


def test_not_root() -> None:
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            sys.executable,
            "-m",
            "pyctr_systemd",
            "run",
            "--",
            "true",
        ],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    one_line(result, "pyctr must be run as root")


def test_dead_bus() -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/run/nothing-listens-here"}
    one_line(pyctr("run", "--", "true", env=env), "cannot connect to the system bus")


def test_no_systemd_on_the_bus(tmp_path: Path) -> None:
    # A bus of our own, on which no systemd ever registers.
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address", f"--address=unix:path={tmp_path}/bus"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
        one_line(
            pyctr("run", "--name", "orphan", "--", "true", env=env),
            "systemd is not available on the system bus",
        )
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_setup_failure_in_the_container(marked_rootfs: tuple[str, str]) -> None:
    root, _ = marked_rootfs
    Path(root, "file").write_text("")
    one_line(pyctr("run", "-w", "/file/sub", root, "--", "true"), "container setup failed: ")


def test_symlink_in_the_rootfs_cannot_lead_out(marked_rootfs: tuple[str, str], tmp_path: Path) -> None:
    root, _ = marked_rootfs
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rmdir(Path(root, "dev"))
    os.symlink(outside, Path(root, "dev"))  # absolute: resolved as if the rootfs were /
    done = pyctr("run", root, "--", "sh", "-c", "echo x > /dev/null && ls /dev/pts/ptmx && readlink /dev")
    assert (done.returncode, done.stdout) == (0, f"/dev/pts/ptmx\n{outside}\n"), done.stderr
    assert list(outside.iterdir()) == []
    assert Path(root, "dev").is_symlink()


@pytest.mark.parametrize("where", ["proc", "sys"])
def test_proc_and_sysfs_only_on_an_ordinary_directory(
    marked_rootfs: tuple[str, str], tmp_path: Path, where: str
) -> None:
    # As runc: a symlink there could put them over anything in the root (CVE-2019-19921).
    root, _ = marked_rootfs
    os.rmdir(Path(root, where))
    os.symlink("/tmp", Path(root, where))
    done = one_line(pyctr("run", root, "--", "true"), "container setup failed: cannot mount ")
    assert f"on /{where}: it is a symlink in the rootfs" in done


def test_a_memory_limit_too_small_to_start_in_says_so() -> None:
    # The kernel kills the launcher before it can report: only its cgroup knows why.
    one_line(
        pyctr("run", "--memory", "4k", "--", "true"),
        "container setup failed: out of memory before the payload",
    )


def test_a_state_root_that_is_a_file(tmp_path: Path, oci_bundle: Bundle) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    said = f"cannot use {not_a_dir} as the state directory (--root): "
    one_line(pyctr("--root", str(not_a_dir), "list"), said + "Not a directory")
    oci_bundle.write("true")
    one_line(
        pyctr("--root", str(not_a_dir), "create", "--bundle", str(oci_bundle.path), "c1"),
        said + "File exists",
    )


def test_a_log_file_that_cannot_be_written(tmp_path: Path) -> None:
    missing = tmp_path / "missing/dir/log"
    one_line(
        pyctr("--log", str(missing), "list"), f"cannot open the log file {missing}: No such file or directory"
    )


def test_update_input_that_is_not_text_or_out_of_range(tmp_path: Path) -> None:
    binary = tmp_path / "r.json"
    binary.write_bytes(b'{"cpu": "\xff"}')
    one_line(
        pyctr("update", "-r", str(binary), "c1"), f"{binary}: not valid JSON: 'utf-8' codec can't decode"
    )
    one_line(
        pyctr("update", "--cpu-period", "0", "c1"),
        "Invalid value for '--cpu-period': 0 is not in the range 1000<=x<=1000000",
    )
