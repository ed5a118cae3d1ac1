"""pyctr_systemd.spec: config.json checked field by field, errors naming the JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyctr_systemd import mounts, spec
from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.hooks import KINDS
from pyctr_systemd.init import launch as launcher
from pyctr_systemd.oci.features import features
from pyctr_systemd.spec import SpecError

DATA = Path(__file__).resolve().parent / "data"
BUNDLE = "/b"


def minimal() -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"]},
        "linux": {"namespaces": [{"type": "mount"}]},
    }


def put(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Set a dotted path in data, making the objects on the way."""
    *parents, last = path.split(".")
    obj = data
    for key in parents:
        obj = obj.setdefault(key, {})
    obj[last] = value
    return data


def parse(data: object) -> spec.Config:
    return spec.parse(data, BUNDLE)


def error(data: object) -> str:
    with pytest.raises(SpecError) as e:
        parse(data)
    return str(e.value)


def runc_spec() -> Any:
    return json.loads((DATA / "runc-spec.json").read_text())


# --- runc's own config.json ------------------------------------------------------------


def test_runc_default_spec_parses_without_warnings() -> None:
    assert parse(runc_spec()).warnings == []


def test_runc_default_spec_launch_spec() -> None:
    c = parse(runc_spec())
    s = spec.launch_spec(c)
    assert s.argv == ("sh",)
    assert s.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm")
    assert s.cwd == "/"
    assert s.terminal is True
    assert s.capabilities.bounding == frozenset({29, 5, 10})
    assert s.capabilities.effective == frozenset({29, 5, 10})
    assert s.capabilities.permitted == frozenset({29, 5, 10})
    assert s.capabilities.ambient == frozenset({29, 5, 10})
    assert s.capabilities.inheritable == frozenset()
    assert s.rlimits == ((7, 1024, 1024),)
    assert s.no_new_privileges is True
    assert s.readonly_root is True
    assert s.rootfs == "/b/rootfs"
    assert s.hostname == "runc"
    assert len(s.namespaces) == 5
    assert s.namespace(sc.CLONE_NEWCGROUP) is None
    assert s.namespaces == (
        (sc.CLONE_NEWPID, ""),
        (sc.CLONE_NEWNET, ""),
        (sc.CLONE_NEWIPC, ""),
        (sc.CLONE_NEWUTS, ""),
        (sc.CLONE_NEWNS, ""),
    )
    assert s.propagation == sc.MS_PRIVATE | sc.MS_REC
    assert s.uid == 0 and s.gid == 0 and s.additional_gids == ()
    assert s.umask is None
    assert s.oom_score_adj is None
    assert s.console_size is None
    assert s.devices == ()
    assert s.sysctl == ()


def test_runc_default_spec_mounts_and_paths_are_pyctrs_defaults() -> None:
    c = parse(runc_spec())
    assert c.mounts == mounts.DEFAULT_MOUNTS
    assert c.masked_paths == mounts.MASKED_PATHS
    assert c.readonly_paths == mounts.READONLY_PATHS


def test_runc_default_spec_other_fields() -> None:
    c = parse(runc_spec())
    assert c.bundle == "/b"
    assert c.oci_version == "1.0.2-dev"
    assert c.root_path == "/b/rootfs"
    assert c.root_readonly is True
    assert c.cgroups_path == ""
    assert c.annotations == {}
    assert c.hooks == {kind: () for kind in KINDS}
    assert c.sysctl == ()
    r = c.resources
    assert (r.memory_limit, r.cpu_shares, r.pids_limit, r.cpu_cpus) == (None, None, None, None)
    assert [(d.allow, d.kind, d.major, d.minor, d.access) for d in r.devices] == [
        (False, "a", None, None, "rwm")
    ]


# --- defaults of a minimal config ----------------------------------------------------


def test_minimal_config_defaults() -> None:
    c = parse(minimal())
    assert c.warnings == []
    assert c.root_path == "/b/rootfs"
    assert c.root_readonly is False
    assert c.hostname == ""
    assert c.mounts == ()
    assert c.namespaces == ((sc.CLONE_NEWNS, ""),)
    assert c.devices == ()
    assert c.masked_paths == ()
    assert c.readonly_paths == ()
    assert c.propagation == sc.MS_PRIVATE | sc.MS_REC
    assert c.annotations == {}
    p = c.process
    assert p.args == ("sh",)
    assert p.env == ()
    assert p.cwd == "/"
    assert (p.uid, p.gid, p.additional_gids, p.umask) == (0, 0, (), None)
    assert p.terminal is False
    assert p.console_size is None
    assert p.rlimits == ()
    assert p.no_new_privileges is False
    assert p.oom_score_adj is None


def test_no_capabilities_object_means_no_capabilities() -> None:
    caps = parse(minimal()).process.capabilities
    empty: frozenset[int] = frozenset()
    assert (caps.bounding, caps.effective, caps.permitted, caps.inheritable, caps.ambient) == (empty,) * 5


def test_absolute_root_path_is_kept() -> None:
    assert parse(put(minimal(), "root.path", "/srv/root/")).root_path == "/srv/root"


def test_relative_root_path_is_normalised_under_the_bundle() -> None:
    assert parse(put(minimal(), "root.path", "./a/../rootfs/")).root_path == "/b/rootfs"


# --- process ---------------------------------------------------------------------------


def test_process_fields() -> None:
    data = put(
        minimal(),
        "process",
        {
            "args": ["/bin/app", "-v"],
            "env": ["A=1", "B=2"],
            "cwd": "/srv",
            "user": {"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 0o022},
            "terminal": True,
            "consoleSize": {"height": 24, "width": 80},
            "capabilities": {
                "bounding": ["CAP_SYS_ADMIN", "CAP_CHOWN"],
                "effective": ["CAP_CHOWN"],
                "inheritable": ["CAP_CHECKPOINT_RESTORE"],
                "permitted": ["CAP_AUDIT_READ"],
            },
            "rlimits": [
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_NPROC", "soft": 10, "hard": 2**64 - 1},
            ],
            "noNewPrivileges": True,
            "oomScoreAdj": -1000,
        },
    )
    p = parse(data).process
    assert p.args == ("/bin/app", "-v")
    assert p.env == ("A=1", "B=2")
    assert p.cwd == "/srv"
    assert (p.uid, p.gid, p.additional_gids, p.umask) == (1000, 100, (5, 6), 0o022)
    assert p.terminal is True
    assert p.console_size == (24, 80)
    assert p.capabilities.bounding == frozenset({21, 0})
    assert p.capabilities.effective == frozenset({0})
    assert p.capabilities.inheritable == frozenset({40})
    assert p.capabilities.permitted == frozenset({37})
    assert p.capabilities.ambient == frozenset()
    assert p.rlimits == ((4, 0, 0), (6, 10, 2**64 - 1))
    assert p.no_new_privileges is True
    assert p.oom_score_adj == -1000


def test_parse_process_on_its_own_names_its_path() -> None:
    warnings: list[str] = []
    with pytest.raises(SpecError) as e:
        spec.parse_process({"args": []}, warnings, "process")
    assert str(e.value) == "config.json: process.args: must be a non-empty list of strings"
    with pytest.raises(SpecError) as e:
        spec.parse_process({"args": ["x"], "cwd": "rel"}, warnings, "exec")
    assert str(e.value) == "config.json: exec.cwd: must be an absolute path, not 'rel'"


def test_unknown_capability_is_a_warning() -> None:
    data = put(minimal(), "process.capabilities", {"bounding": ["CAP_KILL", "CAP_FLY"]})
    c = parse(data)
    assert c.process.capabilities.bounding == frozenset({5})
    assert c.warnings == ["process.capabilities.bounding: unknown capability CAP_FLY ignored"]


def test_capability_and_rlimit_numbers() -> None:
    assert spec.CAPABILITY_NUMBERS["CAP_CHOWN"] == 0
    assert spec.CAPABILITY_NUMBERS["CAP_NET_BIND_SERVICE"] == 10
    assert spec.CAPABILITY_NUMBERS["CAP_SYS_ADMIN"] == 21
    assert spec.CAPABILITY_NUMBERS["CAP_AUDIT_WRITE"] == 29
    assert spec.CAPABILITY_NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40
    assert len(spec.CAPABILITY_NUMBERS) == 41
    assert spec.CAPABILITIES_BY_NUMBER[29] == "CAP_AUDIT_WRITE"
    assert spec.RLIMITS["RLIMIT_CPU"] == 0
    assert spec.RLIMITS["RLIMIT_NOFILE"] == 7
    assert spec.RLIMITS["RLIMIT_RTTIME"] == 15
    assert len(spec.RLIMITS) == 16


# --- mounts, namespaces, hooks, devices, sysctl ------------------------------------------


def test_mounts_are_parsed_in_order() -> None:
    data = put(
        minimal(),
        "mounts",
        [
            {"destination": "/proc/", "type": "proc", "source": "proc"},
            {"destination": "/data", "source": "data", "options": ["rbind", "ro"]},
            {"destination": "/abs", "type": "none", "source": "/srv/x/../y", "options": ["bind"]},
            {"destination": "/t", "type": "tmpfs", "options": ["nosuid", "mode=755", "rshared"]},
        ],
    )
    assert parse(data).mounts == (
        mounts.MountEntry("/proc", "proc", "proc"),
        mounts.MountEntry("/data", "bind", "/b/data", sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY, bind=True),
        mounts.MountEntry("/abs", "none", "/srv/y", sc.MS_BIND, bind=True),
        mounts.MountEntry(
            "/t", "tmpfs", "tmpfs", sc.MS_NOSUID, (mounts.MS_SHARED | sc.MS_REC,), "mode=755", False
        ),
    )


def test_namespaces_keep_order_and_paths() -> None:
    data = put(
        minimal(),
        "linux.namespaces",
        [
            {"type": "network", "path": "/var/run/netns/x"},
            {"type": "mount"},
            {"type": "cgroup"},
            {"type": "ipc", "path": ""},
        ],
    )
    assert parse(data).namespaces == (
        (sc.CLONE_NEWNET, "/var/run/netns/x"),
        (sc.CLONE_NEWNS, ""),
        (sc.CLONE_NEWCGROUP, ""),
        (sc.CLONE_NEWIPC, ""),
    )


def test_hostname_with_a_uts_namespace() -> None:
    data = put(minimal(), "linux.namespaces", [{"type": "mount"}, {"type": "uts"}])
    assert parse(put(data, "hostname", "box")).hostname == "box"


def test_hooks() -> None:
    data = put(
        minimal(),
        "hooks",
        {
            "prestart": [{"path": "/bin/a"}],
            "poststop": [{"path": "/bin/b", "args": ["b", "-x"], "env": ["K=V"], "timeout": 5}],
        },
    )
    hooks = parse(data).hooks
    assert set(hooks) == set(KINDS)
    assert [h.as_json() for h in hooks["prestart"]] == [{"path": "/bin/a", "args": [], "env": []}]
    assert [h.as_json() for h in hooks["poststop"]] == [
        {"path": "/bin/b", "args": ["b", "-x"], "env": ["K=V"], "timeout": 5}
    ]
    assert hooks["createRuntime"] == ()


def test_linux_devices() -> None:
    data = put(
        minimal(),
        "linux.devices",
        [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
            {
                "path": "/dev/./sda",
                "type": "b",
                "major": 8,
                "minor": 0,
                "fileMode": 0o60600,  # podman's: with the file-type bits
                "uid": 1,
                "gid": 6,
            },
        ],
    )
    devices = parse(data).devices
    assert [(d.path, d.kind, d.major, d.minor, d.mode, d.uid, d.gid) for d in devices] == [
        ("/dev/fuse", "c", 10, 229, 0o666, 0, 0),
        ("/dev/sda", "b", 8, 0, 0o600, 1, 6),
    ]


def test_namespaced_sysctls() -> None:
    data = put(
        minimal(),
        "linux.namespaces",
        [{"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
    )
    put(
        data,
        "linux.sysctl",
        {
            "net.ipv4.ip_forward": "1",
            "kernel.shmmax": "100",
            "kernel.msgmax": "10",
            "kernel.sem": "1 2 3 4",
            "fs.mqueue.msg_max": "5",
            "kernel.domainname": "example",
        },
    )
    assert parse(data).sysctl == (
        ("net.ipv4.ip_forward", "1"),
        ("kernel.shmmax", "100"),
        ("kernel.msgmax", "10"),
        ("kernel.sem", "1 2 3 4"),
        ("fs.mqueue.msg_max", "5"),
        ("kernel.domainname", "example"),
    )


def test_sysctl_of_a_joined_namespace_is_allowed() -> None:
    data = put(minimal(), "linux.namespaces", [{"type": "mount"}, {"type": "network", "path": "/run/n"}])
    assert parse(put(data, "linux.sysctl", {"net.core.somaxconn": "5"})).sysctl == (
        ("net.core.somaxconn", "5"),
    )


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("rprivate", sc.MS_PRIVATE | sc.MS_REC),
        ("private", sc.MS_PRIVATE | sc.MS_REC),
        ("rslave", mounts.MS_SLAVE | sc.MS_REC),
        ("slave", mounts.MS_SLAVE | sc.MS_REC),
        ("rshared", mounts.MS_SHARED | sc.MS_REC),
        ("shared", mounts.MS_SHARED | sc.MS_REC),
        ("runbindable", mounts.MS_UNBINDABLE | sc.MS_REC),
        ("unbindable", mounts.MS_UNBINDABLE | sc.MS_REC),
    ],
)
def test_rootfs_propagation(name: str, flags: int) -> None:
    assert parse(put(minimal(), "linux.rootfsPropagation", name)).propagation == flags


def test_annotations_and_cgroups_path() -> None:
    data = put(minimal(), "annotations", {"a": "1", "org.systemd.property.X": "true"})
    c = parse(put(data, "linux.cgroupsPath", "system.slice:p:n"))
    assert c.annotations == {"a": "1", "org.systemd.property.X": "true"}
    assert c.cgroups_path == "system.slice:p:n"


# --- resources -------------------------------------------------------------------------


def test_parse_resources_fields() -> None:
    warnings: list[str] = []
    r = spec.parse_resources(
        {
            "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": -1},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 100},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rw"},
                {"allow": True, "type": "b", "major": -1, "minor": -1},
            ],
        },
        warnings,
    )
    assert warnings == []
    assert (r.memory_limit, r.memory_reservation, r.memory_swap) == (1 << 30, 1 << 29, -1)
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period) == (512, 50000, 100000)
    assert (r.cpu_cpus, r.cpu_mems, r.pids_limit) == ("0-1", "0", 100)
    assert [(d.allow, d.kind, d.major, d.minor, d.access) for d in r.devices] == [
        (False, "a", None, None, "rwm"),
        (True, "c", 10, 200, "rw"),
        (True, "b", None, None, "rwm"),
    ]


def test_parse_resources_empty() -> None:
    r = spec.parse_resources({}, [])
    assert [getattr(r, name) for name in r.__slots__] == [None] * 9 + [()]


def test_update_errors_name_their_source_and_the_json_path() -> None:
    with pytest.raises(SpecError) as e:
        spec.parse_resources({"cpu": {"shares": 1}}, [], "", "stdin")
    assert str(e.value) == "stdin: cpu.shares: must be 2 to 262144"


def test_zero_is_not_set_as_runc_reads_it() -> None:
    # docker's config.json at create, and its `update --resources -` JSON (every field, 0 unchanged)
    warnings: list[str] = []
    r = spec.parse_resources(
        {
            "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0, "realtimePeriod": 0,
                    "cpus": "", "mems": ""},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0},
        },
        warnings,
    )  # fmt: skip
    assert [getattr(r, name) for name in r.__slots__] == [None] * 9 + [()]
    assert warnings == []


@pytest.mark.parametrize(
    ("group", "key", "value"),
    [("memory", "disableOOMKiller", True), ("memory", "useHierarchy", True),
     ("memory", "checkBeforeUpdate", True), ("cpu", "idle", 1), ("cpu", "burst", 1000)],
)  # fmt: skip
def test_every_unhonoured_resource_is_warned_about_only_when_asked_for(
    group: str, key: str, value: object
) -> None:
    warnings: list[str] = []
    spec.parse_resources({group: {key: value}}, warnings)
    field = f"linux.resources.{group}.{key}"
    assert warnings == [f"{field} is not supported: {spec.NOT_HONOURED[field]}"]
    quiet: list[str] = []
    spec.parse_resources({group: {key: False if value is True else 0}}, quiet)
    assert quiet == []


def test_set_values_of_unhonoured_fields_are_warned_about() -> None:
    warnings: list[str] = []
    spec.parse_resources(
        {"blockIO": {"weight": 500}, "memory": {"swappiness": 0, "kernel": 1 << 20}}, warnings
    )
    assert warnings == [
        "linux.resources.blockIO is not supported: block I/O is not limited",
        "linux.resources.memory.kernel is not supported: kernel memory is not limited",
        "linux.resources.memory.swappiness is not supported: swappiness is not set",
    ]


@pytest.mark.parametrize("key", ["cpus", "mems"])
@pytest.mark.parametrize("text", ["0-x", "3-1", "-1", "all"])
def test_unreadable_cpu_list_is_a_spec_error(key: str, text: str) -> None:
    # limits.cpu_mask raises ValueError on these at create (cgroup v2): a bad config
    # must be a one-line SpecError here instead.
    with pytest.raises(SpecError, match=rf"^config\.json: linux\.resources\.cpu\.{key}: "):
        spec.parse_resources({"cpu": {key: text}}, [])


# --- warnings for what pyctr does not do -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "warning"),
    [
        (
            "linux.intelRdt",
            {"closID": "x"},
            "linux.intelRdt is not supported: no Intel RDT allocation is made",
        ),
        ("linux.mountLabel", "system_u", "linux.mountLabel is not supported: mounts get no SELinux label"),
        (
            "linux.personality",
            {"domain": "LINUX32"},
            "linux.personality is not supported: the personality is not changed",
        ),
        (
            "process.selinuxLabel",
            "system_u:system_r:svirt_lxc_net_t:s0",
            "process.selinuxLabel is not supported: the container runs without an SELinux label",
        ),
        (
            "process.ioPriority",
            {"class": "IOPRIO_CLASS_IDLE"},
            "process.ioPriority is not supported: the payload keeps the default I/O priority",
        ),
        (
            "process.scheduler",
            {"policy": "SCHED_IDLE"},
            "process.scheduler is not supported: the payload keeps the default scheduler",
        ),
        (
            "linux.resources.blockIO",
            {"weight": 10},
            "linux.resources.blockIO is not supported: block I/O is not limited",
        ),
        (
            "linux.resources.hugepageLimits",
            [{"pageSize": "2MB", "limit": 1}],
            "linux.resources.hugepageLimits is not supported: huge pages are not limited",
        ),
        (
            "linux.resources.network",
            {"classID": 1},
            "linux.resources.network is not supported: network priorities are not set",
        ),
        (
            "linux.resources.rdma",
            {"mlx5_1": {"hcaHandles": 3}},
            "linux.resources.rdma is not supported: RDMA is not limited",
        ),
        (
            "linux.resources.unified",
            {"memory.high": "1G"},
            "linux.resources.unified is not supported: cgroup v2 files are not written",
        ),
        (
            "linux.resources.memory.kernel",
            1000,
            "linux.resources.memory.kernel is not supported: kernel memory is not limited",
        ),
        (
            "linux.resources.memory.kernelTCP",
            1000,
            "linux.resources.memory.kernelTCP is not supported: kernel TCP memory is not limited",
        ),
        (
            "linux.resources.memory.swappiness",
            0,
            "linux.resources.memory.swappiness is not supported: swappiness is not set",
        ),
        (
            "linux.resources.cpu.realtimeRuntime",
            950000,
            "linux.resources.cpu.realtimeRuntime is not supported: real-time CPU time is not set",
        ),
        (
            "linux.resources.cpu.realtimePeriod",
            1000,
            "linux.resources.cpu.realtimePeriod is not supported: real-time CPU period is not set",
        ),
    ],
)
def test_unsupported_field_is_a_warning(path: str, value: object, warning: str) -> None:
    assert parse(put(minimal(), path, value)).warnings == [warning]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("linux.seccomp", None),
        ("linux.resources.blockIO", {}),
        ("linux.resources.unified", {}),
    ],
)
def test_empty_unsupported_field_is_not_a_warning(path: str, value: object) -> None:
    assert parse(put(minimal(), path, value)).warnings == []


def test_apparmor_profile_is_read_and_checked() -> None:
    assert parse(put(minimal(), "process.apparmorProfile", "docker-default")).process.apparmor_profile == (
        "docker-default"
    )
    with pytest.raises(SpecError, match="process.apparmorProfile: must be a profile name on one line"):
        parse(put(minimal(), "process.apparmorProfile", "x\nchangeprofile y"))


def test_warnings_come_in_config_order() -> None:
    data = put(minimal(), "linux.intelRdt", {"closID": "x"})
    put(data, "linux.resources.blockIO", {"weight": 10})
    put(data, "process.selinuxLabel", "p")
    assert parse(data).warnings == [
        "process.selinuxLabel is not supported: the container runs without an SELinux label",
        "linux.resources.blockIO is not supported: block I/O is not limited",
        "linux.intelRdt is not supported: no Intel RDT allocation is made",
    ]


# --- every error, with its exact message -------------------------------------------------

U32 = "0 to 4294967294"
U64 = "0 to 18446744073709551615"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("ociVersion", None, "ociVersion: must be a string"),
        ("ociVersion", 1, "ociVersion: must be a string"),
        ("ociVersion", "2.0.0", "ociVersion: version 2.0.0 is not supported (1.x is)"),
        ("ociVersion", "0.9", "ociVersion: version 0.9 is not supported (1.x is)"),
        ("root", None, "root: must be an object"),
        ("root", "rootfs", "root: must be an object"),
        ("root.path", None, "root.path: must be a string"),
        ("root.readonly", "yes", "root.readonly: must be true or false"),
        ("process", [], "process: must be an object"),
        ("process.args", [], "process.args: must be a non-empty list of strings"),
        ("process.args", "sh", "process.args: must be a non-empty list of strings"),
        ("process.args", ["sh", 1], "process.args: must be a non-empty list of strings"),
        ("process.args", None, "process.args: must be a non-empty list of strings"),
        ("process.env", "A=1", "process.env: must be a list"),
        ("process.env", ["A=1", 2], "process.env[1]: must be a string"),
        ("process.cwd", 1, "process.cwd: must be a string"),
        ("process.cwd", "tmp", "process.cwd: must be an absolute path, not 'tmp'"),
        ("process.cwd", "", "process.cwd: must be an absolute path, not ''"),
        ("process.user", [], "process.user: must be an object"),
        ("process.user.uid", -1, f"process.user.uid: must be {U32}"),
        ("process.user.uid", 2**32 - 1, f"process.user.uid: must be {U32}"),
        ("process.user.uid", "0", "process.user.uid: must be an integer"),
        ("process.user.uid", True, "process.user.uid: must be an integer"),
        ("process.user.uid", 1.0, "process.user.uid: must be an integer"),
        ("process.user.gid", 2**32, f"process.user.gid: must be {U32}"),
        ("process.user.additionalGids", 5, "process.user.additionalGids: must be a list"),
        ("process.user.additionalGids", [1, -1], f"process.user.additionalGids[1]: must be {U32}"),
        ("process.user.umask", 0o1000, "process.user.umask: must be 0 to 511"),
        ("process.user.umask", "022", "process.user.umask: must be an integer"),
        ("process.terminal", "true", "process.terminal: must be true or false"),
        ("process.terminal", 1, "process.terminal: must be true or false"),
        ("process.consoleSize", [24, 80], "process.consoleSize: must be an object"),
        ("process.consoleSize", {"height": 65536}, "process.consoleSize.height: must be 0 to 65535"),
        ("process.consoleSize", {"width": -1}, "process.consoleSize.width: must be 0 to 65535"),
        ("process.capabilities", ["CAP_KILL"], "process.capabilities: must be an object"),
        ("process.capabilities", {"bounding": "CAP_KILL"}, "process.capabilities.bounding: must be a list"),
        ("process.capabilities", {"ambient": [5]}, "process.capabilities.ambient[0]: must be a string"),
        ("process.rlimits", {}, "process.rlimits: must be a list"),
        ("process.rlimits", [1], "process.rlimits[0]: must be an object"),
        ("process.rlimits", [{"soft": 1, "hard": 1}], "process.rlimits[0].type: must be a string"),
        (
            "process.rlimits",
            [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}],
            "process.rlimits[0].type: unknown resource limit RLIMIT_FOO",
        ),
        (
            "process.rlimits",
            [
                {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2},
            ],
            "process.rlimits[1].type: RLIMIT_NOFILE is given twice",
        ),
        (
            "process.rlimits",
            [{"type": "RLIMIT_CORE", "soft": -1, "hard": 1}],
            f"process.rlimits[0].soft: must be {U64}",
        ),
        (
            "process.rlimits",
            [{"type": "RLIMIT_CORE", "soft": 1}],
            "process.rlimits[0].hard: must be an integer",
        ),
        (
            "process.rlimits",
            [{"type": "RLIMIT_CORE", "soft": 1, "hard": 2**64}],
            f"process.rlimits[0].hard: must be {U64}",
        ),
        (
            "process.rlimits",
            [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}],
            "process.rlimits[0]: soft limit is above the hard limit",
        ),
        ("process.noNewPrivileges", 1, "process.noNewPrivileges: must be true or false"),
        ("process.oomScoreAdj", 1001, "process.oomScoreAdj: must be -1000 to 1000"),
        ("process.oomScoreAdj", -1001, "process.oomScoreAdj: must be -1000 to 1000"),
        ("hostname", 1, "hostname: must be a string"),
        ("hostname", "box", "hostname: needs a uts namespace of the container's own"),
        ("mounts", {}, "mounts: must be a list"),
        ("mounts", ["/proc"], "mounts[0]: must be an object"),
        ("mounts", [{"type": "proc"}], "mounts[0].destination: must be a string"),
        (
            "mounts",
            [{"destination": "proc", "type": "proc"}],
            "mounts[0].destination: must be an absolute path, not 'proc'",
        ),
        ("mounts", [{"destination": "/p", "type": 1}], "mounts[0].type: must be a string"),
        (
            "mounts",
            [{"destination": "/p", "type": "proc", "source": 1}],
            "mounts[0].source: must be a string",
        ),
        (
            "mounts",
            [{"destination": "/p", "type": "proc", "options": "ro"}],
            "mounts[0].options: must be a list",
        ),
        (
            "mounts",
            [{"destination": "/p", "type": "proc", "options": ["ro", 1]}],
            "mounts[0].options[1]: must be a string",
        ),
        (
            "mounts",
            [{"destination": "/p", "type": "proc"}, {"destination": "/q", "source": "q"}],
            "mounts[1].type: must name a filesystem type (or the mount must be a bind mount)",
        ),
        ("hooks", [], "hooks: must be an object"),
        ("hooks", {"prestart": {}}, "hooks.prestart: must be a list"),
        ("hooks", {"poststart": ["/bin/true"]}, "hooks.poststart[0]: must be an object"),
        ("hooks", {"poststop": [{"args": []}]}, "hooks.poststop[0].path: must be a string"),
        (
            "hooks",
            {"createRuntime": [{"path": "bin/x"}]},
            "hooks.createRuntime[0].path: must be an absolute path",
        ),
        ("hooks", {"prestart": [{"path": "/x", "args": "x"}]}, "hooks.prestart[0].args: must be a list"),
        ("hooks", {"prestart": [{"path": "/x", "env": [1]}]}, "hooks.prestart[0].env[0]: must be a string"),
        (
            "hooks",
            {"prestart": [{"path": "/x", "timeout": 0}]},
            "hooks.prestart[0].timeout: must be 1 to 2147483648",
        ),
        (
            "hooks",
            {"prestart": [{"path": "/x", "timeout": "5"}]},
            "hooks.prestart[0].timeout: must be an integer",
        ),
        ("annotations", [], "annotations: must be an object"),
        ("annotations", {"a": 1}, "annotations.a: must be a string"),
        ("linux", [], "linux: must be an object"),
        (
            "linux",
            {"maskedPaths": ["/x"]},
            "linux.maskedPaths: needs a mount namespace (linux.namespaces has no mount entry)",
        ),
        (
            "linux",
            {"rootfsPropagation": "rprivate"},
            "linux.rootfsPropagation: needs a mount namespace (linux.namespaces has no mount entry)",
        ),
        ("linux.namespaces", {}, "linux.namespaces: must be a list"),
        ("linux.namespaces", ["mount"], "linux.namespaces[0]: must be an object"),
        ("linux.namespaces", [{"path": "/x"}], "linux.namespaces[0].type: must be a string"),
        ("linux.namespaces", [{"type": "fish"}], "linux.namespaces[0].type: unknown namespace type 'fish'"),
        (
            "linux.namespaces",
            [{"type": "mount"}, {"type": "user"}],
            "linux.namespaces[1].type: user namespaces are not supported by pyctr yet",
        ),
        (
            "linux.namespaces",
            [{"type": "mount"}, {"type": "time"}],
            "linux.namespaces[1].type: time namespaces are not supported by pyctr yet",
        ),
        (
            "linux.namespaces",
            [{"type": "mount"}, {"type": "mount"}],
            "linux.namespaces[1].type: the mount namespace is given twice",
        ),
        ("linux.namespaces", [{"type": "mount", "path": 1}], "linux.namespaces[0].path: must be a string"),
        (
            "linux.namespaces",
            [{"type": "mount", "path": "ns"}],
            "linux.namespaces[0].path: must be an absolute path",
        ),
        ("linux.resources", [], "linux.resources: must be an object"),
        ("linux.resources.memory", 5, "linux.resources.memory: must be an object"),
        ("linux.resources.cpu", 5, "linux.resources.cpu: must be an object"),
        ("linux.resources.pids", 5, "linux.resources.pids: must be an object"),
        (
            "linux.resources.memory.limit",
            -2,
            "linux.resources.memory.limit: must be -1 to 9223372036854775807",
        ),
        (
            "linux.resources.memory.limit",
            2**63,
            "linux.resources.memory.limit: must be -1 to 9223372036854775807",
        ),
        ("linux.resources.memory.limit", "1G", "linux.resources.memory.limit: must be an integer"),
        (
            "linux.resources.memory.reservation",
            -5,
            "linux.resources.memory.reservation: must be -1 to 9223372036854775807",
        ),
        ("linux.resources.memory.swap", 1.5, "linux.resources.memory.swap: must be an integer"),
        ("linux.resources.cpu.shares", 1, "linux.resources.cpu.shares: must be 2 to 262144"),
        ("linux.resources.cpu.shares", 262145, "linux.resources.cpu.shares: must be 2 to 262144"),
        ("linux.resources.cpu.quota", -2, "linux.resources.cpu.quota: must be -1 to 9223372036854775807"),
        ("linux.resources.cpu.period", 999, "linux.resources.cpu.period: must be 1000 to 1000000"),
        ("linux.resources.cpu.period", 1_000_001, "linux.resources.cpu.period: must be 1000 to 1000000"),
        ("linux.resources.cpu.cpus", 5, "linux.resources.cpu.cpus: must be a string"),
        ("linux.resources.cpu.mems", ["0"], "linux.resources.cpu.mems: must be a string"),
        ("linux.resources.pids.limit", "x", "linux.resources.pids.limit: must be an integer"),
        ("linux.resources.pids.limit", -2, "linux.resources.pids.limit: must be -1 to 9223372036854775807"),
        ("linux.resources.devices", {}, "linux.resources.devices: must be a list"),
        ("linux.resources.devices", ["a"], "linux.resources.devices[0]: must be an object"),
        (
            "linux.resources.devices",
            [{"access": "rwm"}],
            "linux.resources.devices[0].allow: must be true or false",
        ),
        (
            "linux.resources.devices",
            [{"allow": True, "type": "u"}],
            "linux.resources.devices[0].type: must be a, b or c",
        ),
        (
            "linux.resources.devices",
            [{"allow": True, "type": 1}],
            "linux.resources.devices[0].type: must be a string",
        ),
        (
            "linux.resources.devices",
            [{"allow": True, "access": "rx"}],
            "linux.resources.devices[0].access: must be letters of rwm",
        ),
        (
            "linux.resources.devices",
            [{"allow": True, "access": ""}],
            "linux.resources.devices[0].access: must be letters of rwm",
        ),
        (
            "linux.resources.devices",
            [{"allow": True, "type": "c", "major": -2}],
            "linux.resources.devices[0].major: must be 0 to 4294967295",
        ),
        (
            "linux.resources.devices",
            [{"allow": True, "type": "c", "major": 1, "minor": "3"}],
            "linux.resources.devices[0].minor: must be an integer",
        ),
        ("linux.devices", {}, "linux.devices: must be a list"),
        ("linux.devices", ["/dev/x"], "linux.devices[0]: must be an object"),
        ("linux.devices", [{"type": "c"}], "linux.devices[0].path: must be a string"),
        ("linux.devices", [{"path": "/tmp/x", "type": "c"}], "linux.devices[0].path: must be below /dev"),
        ("linux.devices", [{"path": "/dev"}], "linux.devices[0].path: must be below /dev"),
        ("linux.devices", [{"path": "/dev/x"}], "linux.devices[0].type: must be a string"),
        ("linux.devices", [{"path": "/dev/x", "type": "a"}], "linux.devices[0].type: must be c, b, u or p"),
        (
            "linux.devices",
            [{"path": "/dev/x", "type": "c", "major": -1}],
            "linux.devices[0].major: must be 0 to 4294967295",
        ),
        (
            "linux.devices",
            [{"path": "/dev/x", "type": "c", "minor": 2**32}],
            "linux.devices[0].minor: must be 0 to 4294967295",
        ),
        (
            "linux.devices",
            [{"path": "/dev/x", "type": "c", "fileMode": 2**32}],
            "linux.devices[0].fileMode: must be 0 to 4294967295",
        ),
        (
            "linux.devices",
            [{"path": "/dev/x", "type": "c", "uid": 2**32 - 1}],
            f"linux.devices[0].uid: must be {U32}",
        ),
        (
            "linux.devices",
            [{"path": "/dev/x", "type": "c", "gid": "0"}],
            "linux.devices[0].gid: must be an integer",
        ),
        ("linux.maskedPaths", "/proc/kcore", "linux.maskedPaths: must be a list"),
        ("linux.readonlyPaths", ["/proc/sys", 1], "linux.readonlyPaths[1]: must be a string"),
        ("linux.maskedPaths", ["/proc/kcore", "proc/x"], "linux.maskedPaths[1]: must be an absolute path"),
        ("linux.readonlyPaths", ["sys"], "linux.readonlyPaths[0]: must be an absolute path"),
        ("linux.sysctl", [], "linux.sysctl: must be an object"),
        ("linux.sysctl", {"net/ipv4/ip_forward": "1"}, "linux.sysctl.net/ipv4/ip_forward: not a sysctl name"),
        ("linux.sysctl", {"net..x": "1"}, "linux.sysctl.net..x: not a sysctl name"),
        (
            "linux.sysctl",
            {"kernel.pid_max": "10"},
            "linux.sysctl.kernel.pid_max: not namespaced: it would change the host",
        ),
        (
            "linux.sysctl",
            {"vm.swappiness": "10"},
            "linux.sysctl.vm.swappiness: not namespaced: it would change the host",
        ),
        (
            "linux.sysctl",
            {"net.ipv4.ip_forward": "1"},
            "linux.sysctl.net.ipv4.ip_forward: the container shares this sysctl's namespace with the host",
        ),
        (
            "linux.sysctl",
            {"kernel.shmmax": "1"},
            "linux.sysctl.kernel.shmmax: the container shares this sysctl's namespace with the host",
        ),
        (
            "linux.sysctl",
            {"kernel.hostname": "x"},
            "linux.sysctl.kernel.hostname: the container shares this sysctl's namespace with the host",
        ),
        (
            "linux.rootfsPropagation",
            "private-ish",
            "linux.rootfsPropagation: unknown propagation 'private-ish'",
        ),
        ("linux.rootfsPropagation", 1, "linux.rootfsPropagation: must be a string"),
        ("linux.cgroupsPath", 1, "linux.cgroupsPath: must be a string"),
        (
            "linux.uidMappings",
            [{"containerID": 0, "hostID": 1000, "size": 1}],
            "linux.uidMappings: needs a user namespace, which pyctr does not support yet",
        ),
        (
            "linux.gidMappings",
            [{"containerID": 0, "hostID": 1000, "size": 1}],
            "linux.gidMappings: needs a user namespace, which pyctr does not support yet",
        ),
    ],
)
def test_invalid_field(path: str, value: object, message: str) -> None:
    assert error(put(minimal(), path, value)) == f"config.json: {message}"


def test_sysctl_value_must_be_a_string() -> None:
    data = put(minimal(), "linux.namespaces", [{"type": "mount"}, {"type": "network"}])
    put(data, "linux.sysctl", {"net.ipv4.ip_forward": 1})
    assert error(data) == "config.json: linux.sysctl.net.ipv4.ip_forward: must be a string"


def test_config_that_is_not_an_object() -> None:
    assert error([]) == "config.json: must be an object"


def test_config_without_process() -> None:
    data = minimal()
    del data["process"]
    assert error(data) == "config.json: process: is required to create a container"


def test_spec_error_is_an_invalid_argument() -> None:
    assert issubclass(SpecError, InvalidArgument)
    assert str(SpecError("a.b", "bad")) == "config.json: a.b: bad"
    assert str(SpecError("", "bad")) == "config.json: bad"


# --- load and launch_spec --------------------------------------------------------------


def test_load_reads_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(runc_spec()))
    c = spec.load(str(tmp_path))
    assert c.bundle == str(tmp_path)
    assert c.root_path == str(tmp_path / "rootfs")


def test_load_makes_a_relative_bundle_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps(minimal()))
    monkeypatch.chdir(tmp_path)
    assert spec.load(".").root_path == str(tmp_path / "rootfs")


def test_load_without_config_json(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as e:
        spec.load(str(tmp_path))
    assert str(e.value) == f"no config.json in bundle {tmp_path}"


def test_load_unreadable_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(InvalidArgument) as e:
        spec.load(str(tmp_path))
    assert str(e.value) == f"cannot read {tmp_path / 'config.json'}: Is a directory"


def test_load_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(InvalidArgument) as e:
        spec.load(str(tmp_path))
    assert str(e.value) == (
        "config.json: not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )


def test_load_json_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"annotations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InvalidArgument) as e:
        spec.load(str(tmp_path))
    assert str(e.value) == "config.json: not valid JSON: nested too deeply"


def test_seccomp_is_read_into_a_filter() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}],
    }
    c = parse(put(minimal(), "linux.seccomp", profile))
    assert c.seccomp is not None and c.warnings == []
    assert (c.seccomp.default_action, c.seccomp.default_errno) == ("SCMP_ACT_ERRNO", 38)
    assert [r.names for r in c.seccomp.rules] == [("read", "write")]
    assert spec.launch_spec(c).seccomp == c.seccomp
    assert parse(minimal()).seccomp is None and spec.launch_spec(parse(minimal())).seccomp is None


def test_seccomp_errors_name_the_field() -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}]}
    with pytest.raises(InvalidArgument) as e:
        parse(put(minimal(), "linux.seccomp", profile))
    assert str(e.value).startswith("config.json: linux.seccomp.syscalls[0].action: ")
    assert "SCMP_ACT_NOTIFY" in str(e.value) or "notification" in str(e.value)


@pytest.mark.parametrize(
    "destination", ["/proc/sys/kernel", "/proc//sys", "/proc/../proc/sys", "/proc/self", "//proc/1"]
)
def test_a_mount_inside_proc_is_refused(destination: str) -> None:
    mount = {"destination": destination, "type": "tmpfs", "source": "tmpfs"}
    with pytest.raises(SpecError) as e:
        parse(put(minimal(), "mounts", [mount]))
    assert str(e.value).startswith("config.json: mounts[0].destination: /proc")
    assert "is inside /proc" in str(e.value)


def test_proc_itself_and_the_lxcfs_files_may_be_mounted() -> None:
    allowed = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        *({"destination": f, "type": "bind", "source": "/x", "options": ["bind"]} for f in mounts.PROC_FILES),
    ]
    assert len(parse(put(minimal(), "mounts", allowed)).mounts) == 1 + len(mounts.PROC_FILES)
    for refused in (
        {"destination": "/proc", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]},
        {"destination": "/proc/uptime", "type": "tmpfs", "source": "tmpfs"},
    ):
        with pytest.raises(SpecError):
            parse(put(minimal(), "mounts", [refused]))


def test_a_device_path_is_normalised_before_its_check() -> None:
    device = {"path": "/dev/../etc/evil", "type": "c", "major": 1, "minor": 3}
    with pytest.raises(SpecError) as e:
        parse(put(minimal(), "linux.devices", [device]))
    assert str(e.value) == "config.json: linux.devices[0].path: must be below /dev"
    device["path"] = "/dev/./x/../fuse"
    assert parse(put(minimal(), "linux.devices", [device])).devices[0].path == "/dev/fuse"


def test_a_huge_cpuset_is_refused_at_once() -> None:
    with pytest.raises(SpecError) as e:
        parse(put(minimal(), "linux.resources.cpu.cpus", "0-99999999"))
    assert str(e.value) == (
        "config.json: linux.resources.cpu.cpus: '0-99999999' is not a list of numbers below 8192 "
        "and ranges like 0-2,4"
    )
    assert parse(put(minimal(), "linux.resources.cpu.cpus", "0-8191")).resources.cpu_cpus == "0-8191"


def test_load_reports_field_errors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(put(minimal(), "process.args", [])))
    with pytest.raises(SpecError) as e:
        spec.load(str(tmp_path))
    assert str(e.value) == "config.json: process.args: must be a non-empty list of strings"


def test_launch_spec_takes_another_process() -> None:
    c = parse(runc_spec())
    other = spec.parse_process({"args": ["ls", "-l"], "cwd": "/tmp", "user": {"uid": 7}}, [])
    s = spec.launch_spec(c, other)
    assert s.argv == ("ls", "-l")
    assert s.cwd == "/tmp"
    assert s.uid == 7
    assert s.terminal is False
    assert s.no_new_privileges is False
    assert s.capabilities.bounding == frozenset()
    assert s.rootfs == "/b/rootfs"
    assert s.readonly_root is True
    assert s.mounts == mounts.DEFAULT_MOUNTS


def test_launch_spec_leaves_the_callers_fields_at_their_defaults() -> None:
    s = spec.launch_spec(parse(runc_spec()))
    assert isinstance(s, launcher.LaunchSpec)
    assert (s.pivot, s.ephemeral, s.console_socket, s.exec_fifo) == (True, False, "", "")
    assert (s.create_container_hooks, s.start_container_hooks, s.hook_state) == ((), (), None)


# --- `pyctr features` -----------------------------------------------------------------


def test_features_shape() -> None:
    f = features()
    assert set(f) == {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"}
    assert f["ociVersionMin"] == "1.0.0"
    assert f["ociVersionMax"] == "1.1.0"
    assert f["hooks"] == list(KINDS)
    options = f["mountOptions"]
    assert isinstance(options, list)
    assert options == sorted(options)
    assert {"bind", "rbind", "ro", "rw", "nosuid", "rprivate", "rslave", "strictatime"} <= set(options)
    linux = f["linux"]
    assert isinstance(linux, dict)
    assert linux["namespaces"] == ["pid", "network", "mount", "ipc", "uts", "cgroup"]
    assert linux["capabilities"] == sorted(spec.CAPABILITY_NUMBERS)
    assert len(linux["capabilities"]) == 41
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": False}
    assert linux["seccomp"]["enabled"] is True
    assert "SCMP_ACT_NOTIFY" not in linux["seccomp"]["actions"]
    assert "SCMP_ACT_ERRNO" in linux["seccomp"]["actions"]
    assert json.loads(json.dumps(f)) == f


def test_a_bind_in_proc_with_a_joined_pid_namespace_is_refused() -> None:
    # /proc is mounted after pivot_root then, where the bind's host source is out of reach.
    data = put(minimal(), "mounts", [{"destination": "/proc/uptime", "type": "bind", "source": "/u"}])
    put(data, "linux.namespaces", [{"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"}])
    with pytest.raises(SpecError) as e:
        parse(data)
    assert str(e.value) == (
        "config.json: mounts[0].destination: a bind mount on /proc/uptime needs a pid namespace of the "
        "container's own"
    )


def test_sysctls_of_a_joined_host_namespace_are_refused() -> None:
    data = put(minimal(), "linux.sysctl", {"net.ipv4.ip_forward": "1"})
    put(data, "linux.namespaces", [{"type": "network", "path": "/proc/self/ns/net"}, {"type": "mount"}])
    c = parse(data)
    with pytest.raises(SpecError) as e:
        spec.refuse_host_sysctls(c)
    assert str(e.value) == (
        "config.json: linux.sysctl.net.ipv4.ip_forward: /proc/self/ns/net is the host's net namespace"
    )
    put(data, "linux.namespaces", [{"type": "network"}, {"type": "mount"}])
    spec.refuse_host_sysctls(parse(data))  # its own: fine


def test_without_a_mount_namespace_the_runtimes_is_shared() -> None:
    # Absent types are inherited (runtime-spec): the root is only chrooted into, so nothing
    # may be mounted or made in it, which would happen in the host's mount namespace.
    data = put(minimal(), "linux.namespaces", [{"type": "pid"}])
    assert parse(data).namespaces == ((sc.CLONE_NEWPID, ""),)
    assert (
        launcher.LaunchSpec(rootfs="/r", argv=("sh",), env=(), namespaces=()).namespace(sc.CLONE_NEWNS)
        is None
    )
    refusals = {
        "mounts": [{"destination": "/p", "type": "proc", "source": "proc"}],
        "root.readonly": True,
        "linux.readonlyPaths": ["/proc/sys"],
        "linux.devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3}],
    }
    for field, value in refusals.items():
        assert error(put(put(minimal(), "linux.namespaces", []), field, value)) == (
            f"config.json: {field}: needs a mount namespace (linux.namespaces has no mount entry)"
        )
