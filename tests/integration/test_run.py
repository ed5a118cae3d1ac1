"""What a container is, seen from inside it: pyctr run on real systemd."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import CHECKOUT, pyctr

IDENTITY = """
echo host=$(hostname)
echo pid=$$
echo marker=$(cat /YOU-ARE-HERE)
for n in pid mnt uts ipc net cgroup; do echo ns-$n=$(readlink /proc/self/ns/$n); done
echo cgroup=$(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\\n' ' ')
set -- /proc/[0-9]*; echo "procs=$*"
ps -o pid,comm
"""


def parse(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_container_is_isolated(marked_rootfs: tuple[str, str]) -> None:
    root, marker = marked_rootfs
    result = pyctr("run", "--name", "identity", "--hostname", "boxname", root, "--", "sh", "-c", IDENTITY)
    assert result.returncode == 0, result.stderr
    seen = parse(result.stdout)
    assert seen["host"] == "boxname"
    assert seen["pid"] == "1"
    assert seen["marker"] == marker  # "/" is the rootfs
    for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup"):
        assert seen[f"ns-{ns}"] != os.readlink(f"/proc/self/ns/{ns}"), f"{ns} namespace is shared"
    assert seen["cgroup"].strip() == "/"  # the cgroup namespace is rooted at the unit
    assert seen["procs"] == "/proc/1"  # /proc is the container's own; the glob forks nothing
    ps = [line.split() for line in result.stdout.splitlines() if "=" not in line]
    assert ps[0] == ["PID", "COMMAND"]
    assert ps[1] == ["1", "sh"]
    assert [comm for _, comm in ps[2:]] == ["ps"]


def test_default_rootfs_and_shell(default_rootfs: str) -> None:
    result = pyctr("run", input="echo hello from $(hostname); cat /etc/passwd | head -1; exit 7\n")
    assert result.returncode == 7, result.stderr
    hello, passwd = result.stdout.splitlines()
    name = hello.removeprefix("hello from ")
    assert len(name) == 12 and int(name, 16) >= 0  # a generated id is the default hostname
    assert passwd == "root:x:0:0:root:/root:/bin/sh"
    assert Path(default_rootfs, "bin/busybox").is_file()
    assert os.readlink(Path(default_rootfs, "bin/sh")) == "/bin/busybox"


def test_env_and_workdir() -> None:
    result = pyctr(
        "run",
        "-e",
        "GREETING=hi there",
        "-e",
        "EMPTY=",
        "-w",
        "/srv/app",
        "--",
        "sh",
        "-c",
        'pwd; echo "$GREETING"; echo "[$EMPTY]"; echo $HOME; echo $container',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["/srv/app", "hi there", "[]", "/root", "pyctr"]


@pytest.mark.parametrize("pivot", [True, False], ids=["pivot_root", "no-pivot"])
def test_the_root_is_entered_with_pivot_root_or_chroot(
    marked_rootfs: tuple[str, str], tmp_path: Path, pivot: bool
) -> None:
    # Seen from inside, both give the same "/"; the system calls tell them apart.
    root, marker = marked_rootfs
    trace = tmp_path / "trace"
    options = [] if pivot else ["--no-pivot"]
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=pivot_root,chroot", "-e", "signal=none", "-o", str(trace)]
        + [sys.executable, "-m", "pyctr_systemd", "run", *options, root, "--", "cat", "/YOU-ARE-HERE"],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, marker + "\n"), done.stderr
    calls = [line.split()[1].split("(")[0] for line in trace.read_text().splitlines()]
    assert calls == (["pivot_root"] if pivot else ["chroot"])


def test_the_hostname_defaults_to_the_name() -> None:
    result = pyctr("run", "--name", "web-1", "--", "hostname")
    assert (result.returncode, result.stdout) == (0, "web-1\n"), result.stderr


def test_network_namespace_has_loopback_up() -> None:
    result = pyctr("run", "--", "sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags")
    assert result.returncode == 0, result.stderr
    interfaces, flags = result.stdout.split()
    assert interfaces == "lo"
    assert int(flags, 16) & 0x1, "lo is down"


# Each device of the minimal /dev does what it is for.
USE_DEVICES = """
ls /dev
echo discard > /dev/null && echo null ok
[ "$(head -c 3 /dev/zero | od -An -tx1)" = " 00 00 00" ] && echo zero ok
echo x 2>&1 > /dev/full | grep -q 'No space left' && echo full ok
[ "$(head -c 4 /dev/random | wc -c)" = 4 ] && [ "$(head -c 4 /dev/urandom | wc -c)" = 4 ] && echo random ok
(: < /dev/tty) 2>&1 | grep -q 'No such device or address' && echo tty ok
stat -L -c '%n %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx
ls -d /dev/pts /dev/shm
"""


def test_minimal_dev() -> None:
    result = pyctr("run", "--", "sh", "-c", USE_DEVICES)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listing = lines[: lines.index("null ok")]
    assert lines[len(listing) :] == [
        "null ok",
        "zero ok",
        "full ok",
        "random ok",
        "tty ok",  # a session of its own: /dev/tty is there, but no controlling terminal
        "/dev/null 1:3",
        "/dev/zero 1:5",
        "/dev/full 1:7",
        "/dev/random 1:8",
        "/dev/urandom 1:9",
        "/dev/tty 5:0",
        "/dev/ptmx 5:2",
        "/dev/pts",
        "/dev/shm",
    ]
    assert listing == [
        "fd",
        "full",
        "mqueue",
        "null",
        "ptmx",
        "pts",
        "random",
        "shm",
        "stderr",
        "stdin",
        "stdout",
        "tty",
        "urandom",
        "zero",
    ]


def test_devices_other_than_the_minimal_ones_are_refused() -> None:
    # DevicePolicy=closed: even a node created with CAP_MKNOD cannot be opened.
    result = pyctr("run", "--", "sh", "-c", "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr


def test_capabilities_are_trimmed() -> None:
    result = pyctr("run", "--", "sh", "-c", "grep ^Cap /proc/self/status")
    assert result.returncode == 0, result.stderr
    caps = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert caps["CapBnd"] == caps["CapEff"] == caps["CapPrm"] == "00000000a80425fb"
    assert caps["CapInh"] == caps["CapAmb"] == "0000000000000000"


def test_kernel_interfaces_are_protected() -> None:
    result = pyctr("run", "--", "sh", "-c", "echo 1 > /proc/sys/vm/drop_caches; mount -t tmpfs x /tmp")
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert "mount: permission denied" in result.stderr  # no CAP_SYS_ADMIN


ENTRY = "import sys; from pyctr_systemd.cli import main; sys.argv[0] = 'pyctr'; main()"


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-c", ENTRY, "run", "--", "echo", "ok"],  # as the installed `pyctr` starts
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(CHECKOUT)!r}); {ENTRY}",
            "run",
            "--",
            "echo",
            "ok",
        ],  # fewest modules preloaded
        [sys.executable, "-m", "pyctr_systemd", "--debug", "run", "--", "echo", "ok"],  # through click
    ],
)
def test_every_way_in_runs_a_container(argv: list[str]) -> None:
    result = subprocess.run(argv, cwd=CHECKOUT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_unit_is_gone_when_pyctr_returns() -> None:
    for _ in range(2):  # and the name is free again at once
        result = pyctr("run", "--name", "again", "--", "true")
        assert result.returncode == 0, result.stderr
        listed = subprocess.run(
            ["systemctl", "list-units", "--all", "--plain", "--no-legend", "pyctr-again.scope"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert listed == ""


def test_the_journal_tells_the_units_story() -> None:
    assert pyctr("run", "--name", "journaled", "--", "true").returncode == 0
    subprocess.run(["journalctl", "--sync"], check=True, timeout=30)
    log = subprocess.run(
        ["journalctl", "--no-pager", "-o", "cat", "-u", "pyctr-journaled.scope"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "Started pyctr-journaled.scope - pyctr container journaled." in log


def test_default_rootfs_is_never_written() -> None:
    first = pyctr("run", "--", "sh", "-c", "echo changed > /etc/passwd; touch /etc/new; mkdir -p /srv/app")
    assert first.returncode == 0, first.stderr
    second = pyctr("run", "--", "sh", "-c", "head -1 /etc/passwd; ls /etc /srv 2>&1")
    assert second.stdout.splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    assert "new" not in second.stdout.split() and "app" not in second.stdout.split()


def test_payload_has_a_session_of_its_own() -> None:
    # Fields 5-7 of /proc/PID/stat: process group, session, controlling tty.
    result = pyctr("run", "--", "sh", "-c", "cut -d' ' -f5-7 /proc/1/stat")
    assert result.stdout.split() == ["1", "1", "0"]
