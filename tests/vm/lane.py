"""The cgroup v2 lane: the integration and sandbox tests again, in a real Debian guest.

For every test of tests/integration and tests/sandbox the session collects, this
adds a twin marked `vm` (`tests/integration/test_oom.py::test_x[v2]`). The first
twin that runs boots the guest (tests/vm/guest.py) once and runs all selected
originals there with pytest, against the guest's own systemd; each twin then
reports its original's outcome, with the guest's failure text. So `pytest -m vm`
reads like any other run, test by test.
"""

from __future__ import annotations

import shlex
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.vm import guest

GUEST_DIRS = ("tests/integration/", "tests/sandbox/")


def _tests(file: str, *names: str) -> tuple[str, ...]:
    return tuple(f"tests/integration/{file}::{name}" for name in names)


# Only what depends on the cgroup layout runs in the guest, whose emulated CPU makes
# each container start cost some thirty times what it does here. Left out: packaging
# (an install under emulation costs a minute), the escapes and hostile bundles (their
# programs need gcc, their races are tuned for real CPUs), and whatever the layout
# does not change: argument checks, exit statuses, identity, namespaces, mounts, hooks,
# terminals, journal lines, names, machined, state. Entries are prefixes of test ids.
NOT_IN_GUEST = (
    "tests/integration/test_package.py",
    "tests/integration/test_bad_input.py",
    "tests/integration/test_exit.py",
    "tests/integration/test_faults.py",  # the leftovers it sweeps for are cgroup v1's (an empty scope)
    "tests/integration/test_escape.py",
    "tests/integration/test_hostile_bundles.py",
    "tests/integration/test_machined.py",
    *_tests(
        "test_services.py",
        "test_a_bad_definition_fails_with_a_journal_line",
        "test_define_refuses_bad_input_and_writes_nothing",
        "test_run_detached_that_cannot_start_says_why_and_leaves_nothing",
        "test_a_name_is_one_container_however_it_runs",
        "test_enable_starts_it_at_boot",
        "test_a_definition_means_what_its_arguments_meant_where_it_was_made",
    ),
    *_tests(
        "test_podman.py",
        "test_run_rm_prints_and_exits",
        "test_exit_codes_of_failing_payloads",
        "test_terminal_through_the_console_socket",
        "test_podmans_seccomp_profile_reaches_the_container",
        "test_device_home_and_privileged",
        "test_pause_unpause_stats_and_cpuset[runc]",
        "test_healthcheck",
        "test_generate_systemd_runs_the_container_as_a_service",
        # docker's list with podman: what the engine does, whatever the layout
        "test_logs_top_signals_and_a_restart_policy",
        "test_limits_and_update",
        "test_oom_kill_is_137_and_reported_as_with_runc",
        "test_user_env_workdir_read_only_tmpfs_and_volume",
        "test_networks_bridge_container_and_a_published_port",
        "test_init_capabilities_cp_and_export",
        "test_twenty_in_parallel",
    ),
    *_tests(
        "test_hostile_state.py",
        "test_state_others_could_write_is_refused",
        "test_state_naming_a_unit_not_the_containers_is_refused",
        "test_deleting_a_stopped_container_spares_a_unit_that_took_its_name",
    ),
    *_tests(
        "test_oci_config.py",
        "test_process_identity_and_environment",
        "test_home_comes_from_the_containers_passwd",
        "test_joining_another_containers_pid_namespace",
        "test_capabilities_all_five_sets",
        "test_rlimits_no_new_privileges_and_oom_score",
        "test_root_readonly_and_hostname",
        "test_mounts_with_their_options",
        "test_new_namespaces_and_joining_one_by_path",
        "test_sysctl_in_the_containers_namespaces",
        "test_rootfs_propagation",
        "test_terminal_through_a_console_socket",
        "test_hooks_run_in_order_with_the_state",
        "test_a_failing_or_slow_hook_fails_create_leaving_nothing",
        "test_what_pyctr_cannot_honour_is_said",
        "test_start_container_hook_alone_and_a_relative_command_from_cwd",
        "test_without_a_mount_namespace_the_container_shares_the_runtimes",
    ),
    *_tests(
        "test_oci_lifecycle.py",
        "test_spec_writes_runcs_defaults_once",
        "test_run_in_the_foreground_returns_the_exit_status",
        "test_run_inside_the_bundle_as_the_lab_does",
        "test_list_in_every_format",
        "test_exec_options_and_process_file",
        "test_exec_detached_writes_its_pid",
        "test_lifecycle_refusals_change_nothing",
        "test_bad_bundles_fail_in_one_line_leaving_nothing",
        "test_log_file_gets_the_error_as_json",
        "test_features_describes_the_runtime",
        "test_exec_detached_that_cannot_run_fails",
        "test_an_unwritable_pid_file_is_one_line_and_leaves_nothing",
    ),
    *_tests(
        "test_run.py",
        "test_default_rootfs_and_shell",
        "test_env_and_workdir",
        "test_the_root_is_entered_with_pivot_root_or_chroot",
        "test_the_hostname_defaults_to_the_name",
        "test_network_namespace_has_loopback_up",
        "test_capabilities_are_trimmed",
        "test_every_way_in_runs_a_container",
        "test_the_journal_tells_the_units_story",
        "test_default_rootfs_is_never_written",
        "test_payload_has_a_session_of_its_own",
    ),
)
# Of these files, only these tests run in the guest: one scenario of each engine on pyctr,
# where the layout decides what stats and cpusets show (and, the guest's AppArmor being on,
# that docker's profile confines the payload).
ONLY_THESE_IN_GUEST = (
    *_tests("test_docker.py", "test_stats_are_the_containers_own[pyctr]"),
    *_tests("test_containerd.py", "test_cri_pod_lifecycle_exec_stats_update[pyctr]"),
    *_tests(
        "test_runc_contract.py",
        "test_a_process_that_dies_while_paused_does_not_break_resume",
    ),
)
LANE_TIMEOUT = guest.BUILD_TIMEOUT + guest.BOOT_TIMEOUT + 60
_RESULTS = pytest.StashKey["dict[str, Outcome] | guest.GuestError"]()
_FIRST = pytest.StashKey[str]()  # the twin that reported a failed boot in full


class Outcome:
    def __init__(self, status: str, message: str = "") -> None:
        self.status, self.message = status, message  # status: passed, failed or skipped


class GuestFailure(Exception):
    pass


class GuestItem(pytest.Item):
    """Stands for one test run in the guest."""

    def __init__(self, *, original: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.original = original
        self.add_marker(pytest.mark.vm)
        self.add_marker(pytest.mark.timeout(LANE_TIMEOUT))

    def runtest(self) -> None:
        results = _results(self.config, self.session.items, self.nodeid)
        if isinstance(results, guest.GuestError):
            first = self.config.stash.setdefault(_FIRST, self.nodeid)
            raise GuestFailure(str(results) if first == self.nodeid else f"the guest failed: see {first}")
        outcome = results.get(self.original)
        if outcome is None:
            raise GuestFailure(f"{self.original} did not run in the guest")
        if outcome.status == "skipped":
            pytest.skip(outcome.message)
        if outcome.status == "failed":
            raise GuestFailure(outcome.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: object = None) -> str:
        if isinstance(excinfo.value, GuestFailure):
            return f"in the cgroup v2 guest:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.path, None, f"{self.original} in the cgroup v2 guest"


def add_twins(items: list[pytest.Item]) -> None:
    """Append a guest twin for every test that belongs in the lane."""
    twins = [
        GuestItem.from_parent(item.parent, name=f"{item.name}[v2]", original=item.nodeid)
        for item in items
        if item.nodeid.startswith(GUEST_DIRS) and in_guest(item.nodeid) and item.parent is not None
    ]
    for twin in twins:
        twin.config.hook.pytest_itemcollected(item=twin)  # counted as collected, like the rest
    items.extend(twins)


def in_guest(nodeid: str) -> bool:
    """Does the test of this id belong in the lane?"""
    file = nodeid.split("::")[0] + "::"
    if any(t.startswith(file) for t in ONLY_THESE_IN_GUEST):
        return nodeid in ONLY_THESE_IN_GUEST
    return not nodeid.startswith(NOT_IN_GUEST)


def _results(
    config: pytest.Config, items: Iterable[pytest.Item], nodeid: str
) -> dict[str, Outcome] | guest.GuestError:
    if _RESULTS not in config.stash:
        originals = [item.original for item in items if isinstance(item, GuestItem)]
        try:
            config.stash[_RESULTS] = _run_in_guest(config, originals)
        except guest.GuestError as e:
            config.stash[_RESULTS] = e
        except BaseException as e:  # a crash or a timeout: reported here, not tried again by every twin
            config.stash[_RESULTS] = guest.GuestError(f"the lane broke off: {type(e).__name__}: {e}")
            config.stash[_FIRST] = nodeid
            raise
    return config.stash[_RESULTS]


def _run_in_guest(config: pytest.Config, nodeids: list[str]) -> dict[str, Outcome]:
    # The lane is worth nothing on any other layout. The sandbox's tests need a
    # cgroup delegated to them; the integration tests run against the guest's
    # systemd itself.
    command = " ".join(
        [
            '[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]',
            '|| { echo "/sys/fs/cgroup is not cgroup v2 only: $(stat -fc %T /sys/fs/cgroup)"; exit 3; }\n',
            "systemd-run --quiet --scope -p Delegate=yes -- /usr/bin/python3 -m pytest -p no:cacheprovider",
            "-q -rfE -m 'not vm' -o junit_logging=out-err --junitxml=/run/share/results.xml",
            *(shlex.quote(n) for n in nodeids),
        ]
    )
    _say(config, f"cgroup v2 guest: booting to run {len(nodeids)} tests (image in {guest.CACHE})")
    with tempfile.TemporaryDirectory(prefix="pyctr-vm-") as tmp:
        share = Path(tmp)
        result = guest.run(command, share)
        report = share / "results.xml"
        if not report.exists():
            raise guest.GuestError(
                f"pytest in the guest left no report (status {result.status}):\n{result.output}"
            )
        outcomes = parse_junit(report.read_text())
    check_status(result.status, outcomes, result.output)
    summary = result.output.strip().splitlines()[-1:] or ["(no output)"]
    _say(config, f"cgroup v2 guest: {summary[0].strip('= ')} ({result.seconds:.0f} s with boot)")
    return outcomes


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal now, past the output capture of the running test."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")


def check_status(status: int, outcomes: dict[str, Outcome], output: str) -> None:
    """A report is only the whole story if pytest says so: 0 with no failure, 1 with one.
    Anything else (interrupted, internal error, usage error, nothing collected) is the lane's failure."""
    failed = any(outcome.status == "failed" for outcome in outcomes.values())
    if status not in (0, 1) or (status == 1) != failed:
        tail = "\n".join(output.splitlines()[-30:])
        raise guest.GuestError(f"pytest in the guest ended with status {status}:\n{tail}")


def parse_junit(xml: str) -> dict[str, Outcome]:
    """Outcomes by node id from pytest's JUnit XML (module-level test functions).

    A test can appear twice (an error in teardown after its call); a failure wins.
    """
    outcomes: dict[str, Outcome] = {}
    for case in ElementTree.fromstring(xml).iter("testcase"):
        nodeid = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        outcome = Outcome("passed")
        output = "".join(
            f"\n----- captured {child.tag[len('system-') :]} -----\n{child.text}"
            for child in case
            if child.tag in ("system-out", "system-err") and child.text
        )
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = Outcome(
                    "failed", f"{child.get('message', '')}\n{child.text or ''}".strip() + output
                )
            elif child.tag == "skipped":
                outcome = Outcome("skipped", child.get("message", ""))
        if nodeid not in outcomes or outcomes[nodeid].status != "failed":
            outcomes[nodeid] = outcome
    return outcomes
