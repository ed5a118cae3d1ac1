"""The cgroup v2 lane's side effects, without qemu: what a guest that never runs the
command looks like (qemu played by a script), and a build that goes wrong."""

import subprocess
import time
from pathlib import Path

import pytest

from tests.vm import guest
from tests.vm.guest import GuestError

# Finds the console file and the share in qemu's arguments, then plays its part.
FAKE_QEMU = """#!/bin/sh
for a; do
    case $a in
        file:*) console=${a#file:} ;;
        *mount_tag=share*) share=${a#local,path=}; share=${share%%,*} ;;
    esac
done
"""


@pytest.fixture
def fake_image(tmp_path: Path) -> Path:
    img = tmp_path / "image"
    img.mkdir()
    for name in ("vmlinuz", "initrd.img", "root.ext4"):
        (img / name).write_text("")
    return img


def qemu(tmp_path: Path, part: str) -> str:
    script = tmp_path / "qemu"
    script.write_text(FAKE_QEMU + part)
    script.chmod(0o755)
    return str(script)


def test_a_guest_that_does_not_come_up_is_reported_with_its_console(tmp_path: Path, fake_image: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    panic = 'printf "booting\\nKernel panic - not syncing: VFS: Unable to mount root fs\\n" >"$console"\n'
    with pytest.raises(GuestError) as failed:
        guest.run("true", share, img=fake_image, qemu=qemu(tmp_path, panic + "exit 0\n"))
    message = str(failed.value)
    assert message.startswith("the guest did not run the command (qemu exit 0, ")
    assert "system state: (never reached)" in message
    assert message.endswith("console:\nbooting\nKernel panic - not syncing: VFS: Unable to mount root fs")


def test_a_guest_that_hangs_is_stopped(tmp_path: Path, fake_image: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    hang = 'echo "[ 1.0] Run /init as init process" >"$console"; exec sleep 60\n'
    with pytest.raises(GuestError, match=r"qemu stopped after 1 s(.|\n)*Run /init as init process$"):
        guest.run("true", share, timeout=1, img=fake_image, qemu=qemu(tmp_path, hang))


def test_the_command_s_output_and_status_come_back(tmp_path: Path, fake_image: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    job = 'echo running >"$share/state"; sh "$share/cmd.sh" >"$share/output"; echo $? >"$share/status"\n'
    result = guest.run("echo hello; exit 3", share, img=fake_image, qemu=qemu(tmp_path, job))
    assert (result.status, result.output) == (3, "hello\n")


def test_a_build_step_past_the_deadline_is_stopped_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    step = ["sh", "-c", f"sleep 60 & echo $! >{pidfile}; wait"]
    with pytest.raises(GuestError, match="took over .* s; stopped in debootstrap"):
        guest._run(step, "debootstrap", time.monotonic() + 0.5)
    orphan = Path(f"/proc/{pidfile.read_text().strip()}/stat")
    deadline = time.monotonic() + 5
    while orphan.exists() and orphan.read_text().split()[2] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not orphan.exists() or orphan.read_text().split()[2] == "Z", "the step's child still runs"


def test_a_half_built_image_is_removed_with_what_is_mounted_in_it(tmp_path: Path) -> None:
    work = tmp_path / ".build-x"
    (work / "rootfs/proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "leftover", str(work / "rootfs/proc")], check=True)
    guest._remove(work)
    assert not work.exists()
    assert str(work) not in Path("/proc/self/mountinfo").read_text()
