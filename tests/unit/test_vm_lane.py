"""The cgroup v2 lane's pure parts: kernel module order, reading pytest's JUnit XML and exit status."""

import pytest

from tests.vm.guest import GuestError, modules_in_order
from tests.vm.lane import Outcome, check_status, in_guest, parse_junit

MODULES_DEP = """\
kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/lib/crc16.ko.xz:
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz
kernel/net/9p/9pnet.ko.xz:
kernel/fs/9p/9p.ko.xz: kernel/fs/netfs/netfs.ko.xz kernel/net/9p/9pnet.ko.xz
kernel/fs/netfs/netfs.ko.xz:
"""
BUILTIN = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n"


def test_modules_come_after_their_dependencies_and_builtins_are_skipped() -> None:
    order = modules_in_order(MODULES_DEP, BUILTIN, ["virtio_pci", "ext4", "9pnet_virtio", "9p"])
    names = [name for name, _ in order]
    assert names == ["jbd2", "mbcache", "crc16", "ext4", "9pnet", "9pnet_virtio", "netfs", "9p"]
    assert dict(order)["ext4"] == "kernel/fs/ext4/ext4.ko.xz"


def test_a_missing_module_is_an_error() -> None:
    with pytest.raises(GuestError, match="nope"):
        modules_in_order(MODULES_DEP, BUILTIN, ["nope"])


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.integration.test_oom" name="test_eater" time="1.0"/>
<testcase classname="tests.integration.test_exit" name="test_code[3]" time="0.1">
  <failure message="assert 125 == 3">long traceback</failure><system-err>pyctr: oops</system-err></testcase>
<testcase classname="tests.sandbox.test_sandbox" name="test_limits" time="0.1">
  <skipped type="pytest.skip" message="not here">skip</skipped></testcase>
<testcase classname="tests.integration.test_run" name="test_leak" time="0.1">
  <failure message="boom">x</failure></testcase>
<testcase classname="tests.integration.test_run" name="test_leak" time="0.1"/>
</testsuite></testsuites>"""


def test_parse_junit() -> None:
    outcomes = parse_junit(JUNIT)
    assert outcomes["tests/integration/test_oom.py::test_eater"].status == "passed"
    failed = outcomes["tests/integration/test_exit.py::test_code[3]"]
    assert (failed.status, failed.message) == (
        "failed",
        "assert 125 == 3\nlong traceback\n----- captured err -----\npyctr: oops",
    )
    assert outcomes["tests/sandbox/test_sandbox.py::test_limits"].status == "skipped"
    assert outcomes["tests/integration/test_run.py::test_leak"].status == "failed"  # a failure wins


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(0, "failed"), (1, "passed"), (2, "passed"), (3, "passed"), (5, "passed")],
)
def test_a_pytest_that_broke_off_fails_the_lane(status: int, outcome: str) -> None:
    with pytest.raises(GuestError, match=f"ended with status {status}:\n...\nlast words"):
        check_status(status, {"t.py::a": Outcome(outcome)}, "...\nlast words")


def test_a_pytest_that_ran_to_its_end_is_taken_at_its_word() -> None:
    check_status(0, {"t.py::a": Outcome("passed")}, "")
    check_status(1, {"t.py::a": Outcome("failed"), "t.py::b": Outcome("passed")}, "")


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("tests/integration/test_oom.py::test_eater", True),
        ("tests/integration/test_exit.py::test_code", False),  # a whole file left out
        ("tests/integration/test_docker.py::test_stats_are_the_containers_own[pyctr]", True),
        ("tests/integration/test_docker.py::test_stats_are_the_containers_own[runc]", False),
        ("tests/integration/test_docker.py::test_pause_and_unpause[pyctr]", False),
        ("tests/integration/test_containerd.py::test_cri_pod_lifecycle_exec_stats_update[pyctr]", True),
    ],
)
def test_which_tests_run_in_the_guest(nodeid: str, expected: bool) -> None:
    assert in_guest(nodeid) is expected
