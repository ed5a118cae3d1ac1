"""pyctr_systemd.seccomp_profile: linux.seccomp and docker profiles checked, pyctr's default profile."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyctr_systemd import seccomp_profile as sp
from pyctr_systemd import spec
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.seccomp_profile import SyscallFilter, SyscallRule

KERNEL = "6.1.0-18-amd64"
# docker's default set (capabilities(7) numbers): CHOWN DAC_OVERRIDE FOWNER FSETID KILL
# SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
DEFAULT_CAPABILITIES = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31})
ALL_CAPABILITIES = frozenset(range(len(spec.CAPABILITIES)))
CAP = spec.CAPABILITY_NUMBERS
EPERM, ENOSYS = 1, 38
# Names in pyctr's default profile that Debian 12's libseccomp (2.5.4) cannot
# resolve: syscalls newer than its table. The loader skips them, as runc does.
NEWER_THAN_LIBSECCOMP = {
    "mseal",  # Linux 6.10
    "getxattrat",  # Linux 6.13, and the three below
    "setxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",  # Linux 6.15
}


def parse(
    value: object,
    path: str = "linux.seccomp",
    source: str = "config.json",
    caps: frozenset[int] = DEFAULT_CAPABILITIES,
    machine: str = "x86_64",
    kernel: str = KERNEL,
) -> SyscallFilter:
    return sp.parse(value, source, path, caps, machine, kernel)


def error(value: object, path: str = "linux.seccomp", source: str = "config.json") -> str:
    with pytest.raises(InvalidArgument) as e:
        parse(value, path, source)
    return str(e.value)


def profile(**fields: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ERRNO", **fields}


def rule(**fields: Any) -> dict[str, Any]:
    return {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", **fields}


def arg(**fields: Any) -> dict[str, Any]:
    return {"index": 0, "value": 1, "op": "SCMP_CMP_EQ", **fields}


# --- what a linux.seccomp object becomes -------------------------------------------------


def test_minimal_object() -> None:
    assert parse({"defaultAction": "SCMP_ACT_ALLOW"}) == SyscallFilter("SCMP_ACT_ALLOW", None, (), (), ())


def test_every_field() -> None:
    value = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 0xF0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"},
                ],
            },
            {"names": ["getppid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["uname"], "action": "SCMP_ACT_LOG"},
        ],
    }
    assert parse(value) == SyscallFilter(
        "SCMP_ACT_ERRNO",
        38,
        ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"),
        ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
        (
            SyscallRule(("read", "write"), "SCMP_ACT_ALLOW", None, ()),
            SyscallRule(("kill",), "SCMP_ACT_ERRNO", 13, ()),
            SyscallRule(
                ("personality",),
                "SCMP_ACT_ALLOW",
                None,
                ((0, 8, 0, "SCMP_CMP_EQ"), (1, 0xF0, 0x10, "SCMP_CMP_MASKED_EQ")),
            ),
            SyscallRule(("getppid",), "SCMP_ACT_TRACE", 7, ()),
            SyscallRule(("uname",), "SCMP_ACT_LOG", None, ()),
        ),
    )


@pytest.mark.parametrize("action", sorted(sp.ACTIONS))
def test_every_action(action: str) -> None:
    assert parse(profile(syscalls=[rule(action=action)])).rules[0].action == action


@pytest.mark.parametrize("op", sorted(sp.OPERATORS))
def test_every_operator(op: str) -> None:
    assert parse(profile(syscalls=[rule(args=[arg(op=op)])])).rules[0].args == ((0, 1, 0, op),)


def test_limits_accepted() -> None:
    value = profile(
        defaultErrnoRet=4095,
        syscalls=[rule(args=[arg(index=5, value=2**64 - 1, valueTwo=2**64 - 1), arg(index=0, value=0)])],
    )
    f = parse(value)
    assert f.default_errno == 4095
    assert f.rules[0].args == ((5, 2**64 - 1, 2**64 - 1, "SCMP_CMP_EQ"), (0, 0, 0, "SCMP_CMP_EQ"))


def test_null_lists_are_empty() -> None:
    """Go writes a nil slice as null; runc and podman read that as empty."""
    value = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": None, "flags": None, "syscalls": None}
    assert parse(value) == SyscallFilter("SCMP_ACT_ALLOW")
    assert parse(profile(syscalls=[rule(args=None, errnoRet=None)])).rules == (
        SyscallRule(("getppid",), "SCMP_ACT_ALLOW"),
    )


def test_repeated_architectures_and_flags_are_given_once() -> None:
    value = profile(
        architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_TSYNC"],
    )
    f = parse(value)
    assert f.architectures == ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64")
    assert f.flags == ("SECCOMP_FILTER_FLAG_TSYNC",)


def test_every_flag_and_architecture() -> None:
    f = parse(profile(flags=sorted(sp.FLAGS), architectures=sorted(sp.ARCHITECTURES)))
    assert set(f.flags) == sp.FLAGS
    assert len(f.flags) == 4
    assert set(f.architectures) == sp.ARCHITECTURES


def test_unknown_syscall_names_are_kept() -> None:
    """The loader skips what libseccomp cannot resolve, as runc does, so newer profiles still load."""
    assert parse(profile(syscalls=[rule(names=["no_such_call", "read"])])).rules[0].names == (
        "no_such_call",
        "read",
    )


def test_empty_listener_path_and_metadata_are_accepted() -> None:
    assert parse(profile(listenerPath="", listenerMetadata="x")) == SyscallFilter("SCMP_ACT_ERRNO")


def test_unknown_fields_are_ignored() -> None:
    assert parse(profile(comment="x", syscalls=[rule(comment="y")])).rules == (
        SyscallRule(("getppid",), "SCMP_ACT_ALLOW"),
    )


# --- every error: one line, naming the JSON path ---------------------------------------------

ERRORS: list[tuple[object, str]] = [
    ([], "linux.seccomp: must be an object"),
    ({}, "linux.seccomp.defaultAction: is required"),
    ({"defaultAction": None}, "linux.seccomp.defaultAction: is required"),
    ({"defaultAction": 1}, "linux.seccomp.defaultAction: must be a string"),
    ({"defaultAction": "SCMP_ACT_X"}, "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_X'"),
    ({"defaultAction": "allow"}, "linux.seccomp.defaultAction: unknown action 'allow'"),
    (
        {"defaultAction": "SCMP_ACT_NOTIFY"},
        "linux.seccomp.defaultAction: pyctr does not support seccomp user notification (SCMP_ACT_NOTIFY)",
    ),
    (
        {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
        "linux.seccomp.defaultErrnoRet: only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_ALLOW",
    ),
    (
        {"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1},
        "linux.seccomp.defaultErrnoRet: only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_KILL",
    ),
    (profile(defaultErrnoRet=4096), "linux.seccomp.defaultErrnoRet: must be 0 to 4095"),
    (profile(defaultErrnoRet=-1), "linux.seccomp.defaultErrnoRet: must be 0 to 4095"),
    (profile(defaultErrnoRet="1"), "linux.seccomp.defaultErrnoRet: must be an integer"),
    (profile(defaultErrnoRet=True), "linux.seccomp.defaultErrnoRet: must be an integer"),
    (profile(defaultErrnoRet=1.0), "linux.seccomp.defaultErrnoRet: must be an integer"),
    (
        profile(listenerPath="/run/agent.sock"),
        "linux.seccomp.listenerPath: pyctr does not support seccomp user notification",
    ),
    (profile(listenerMetadata=1), "linux.seccomp.listenerMetadata: must be a string"),
    (profile(architectures="SCMP_ARCH_X86_64"), "linux.seccomp.architectures: must be a list"),
    (profile(architectures=[1]), "linux.seccomp.architectures[0]: must be a string"),
    (
        profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]),
        "linux.seccomp.architectures[1]: unknown architecture 'SCMP_ARCH_VAX'",
    ),
    (profile(architectures=["x86_64"]), "linux.seccomp.architectures[0]: unknown architecture 'x86_64'"),
    (profile(flags="SECCOMP_FILTER_FLAG_LOG"), "linux.seccomp.flags: must be a list"),
    (profile(flags=[0]), "linux.seccomp.flags[0]: must be a string"),
    (
        profile(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_NEW_LISTENER"]),
        "linux.seccomp.flags[1]: unknown or unsupported flag 'SECCOMP_FILTER_FLAG_NEW_LISTENER'",
    ),
    (profile(syscalls={}), "linux.seccomp.syscalls: must be a list"),
    (profile(syscalls=["read"]), "linux.seccomp.syscalls[0]: must be an object"),
    (
        profile(syscalls=[rule(), rule(), rule(), rule(action="X")]),
        "linux.seccomp.syscalls[3].action: unknown action 'X'",
    ),
    (profile(syscalls=[{"names": ["read"]}]), "linux.seccomp.syscalls[0].action: is required"),
    (profile(syscalls=[rule(action=0)]), "linux.seccomp.syscalls[0].action: must be a string"),
    (
        profile(syscalls=[rule(action="SCMP_ACT_NOTIFY")]),
        "linux.seccomp.syscalls[0].action: "
        "pyctr does not support seccomp user notification (SCMP_ACT_NOTIFY)",
    ),
    (profile(syscalls=[{"action": "SCMP_ACT_ALLOW"}]), "linux.seccomp.syscalls[0].names: is required"),
    (profile(syscalls=[rule(names=[])]), "linux.seccomp.syscalls[0].names: must name at least one syscall"),
    (profile(syscalls=[rule(names="read")]), "linux.seccomp.syscalls[0].names: must be a list"),
    (
        profile(syscalls=[rule(names=["read", ""])]),
        "linux.seccomp.syscalls[0].names[1]: must be a non-empty string",
    ),
    (
        profile(syscalls=[rule(names=["read", "write", 3])]),
        "linux.seccomp.syscalls[0].names[2]: must be a non-empty string",
    ),
    (
        profile(syscalls=[rule(name="read")]),
        "linux.seccomp.syscalls[0].name: give name or names, not both",
    ),
    (
        profile(syscalls=[{"name": 3, "action": "SCMP_ACT_ALLOW"}]),
        "linux.seccomp.syscalls[0].name: must be a non-empty string",
    ),
    (
        profile(syscalls=[rule(errnoRet=1)]),
        "linux.seccomp.syscalls[0].errnoRet: only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not SCMP_ACT_ALLOW",
    ),
    (
        profile(syscalls=[rule(action="SCMP_ACT_ERRNO", errnoRet=5000)]),
        "linux.seccomp.syscalls[0].errnoRet: must be 0 to 4095",
    ),
    (profile(syscalls=[rule(args={})]), "linux.seccomp.syscalls[0].args: must be a list"),
    (profile(syscalls=[rule(args=[0])]), "linux.seccomp.syscalls[0].args[0]: must be an object"),
    (
        profile(syscalls=[rule(args=[arg(), {"value": 1, "op": "SCMP_CMP_EQ"}])]),
        "linux.seccomp.syscalls[0].args[1].index: is required",
    ),
    (
        profile(syscalls=[rule(args=[{"index": 0, "op": "SCMP_CMP_EQ"}])]),
        "linux.seccomp.syscalls[0].args[0].value: is required",
    ),
    (
        profile(syscalls=[rule(args=[{"index": 0, "value": 1}])]),
        "linux.seccomp.syscalls[0].args[0].op: is required",
    ),
    (
        profile(syscalls=[rule(args=[arg(index=6)])]),
        "linux.seccomp.syscalls[0].args[0].index: must be 0 to 5",
    ),
    (
        profile(syscalls=[rule(args=[arg(index=-1)])]),
        "linux.seccomp.syscalls[0].args[0].index: must be 0 to 5",
    ),
    (
        profile(syscalls=[rule(args=[arg(value=-1)])]),
        "linux.seccomp.syscalls[0].args[0].value: must be 0 to 18446744073709551615",
    ),
    (
        profile(syscalls=[rule(args=[arg(value=2**64)])]),
        "linux.seccomp.syscalls[0].args[0].value: must be 0 to 18446744073709551615",
    ),
    (
        profile(syscalls=[rule(args=[arg(value="1")])]),
        "linux.seccomp.syscalls[0].args[0].value: must be an integer",
    ),
    (
        profile(syscalls=[rule(args=[arg(valueTwo=2**64)])]),
        "linux.seccomp.syscalls[0].args[0].valueTwo: must be 0 to 18446744073709551615",
    ),
    (
        profile(syscalls=[rule(args=[arg(valueTwo=False)])]),
        "linux.seccomp.syscalls[0].args[0].valueTwo: must be an integer",
    ),
    (
        profile(syscalls=[rule(args=[arg(op="SCMP_CMP_MASKED_NE")])]),
        "linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_MASKED_NE'",
    ),
    (profile(syscalls=[rule(args=[arg(op=1)])]), "linux.seccomp.syscalls[0].args[0].op: must be a string"),
    # docker's profile format
    (
        profile(architectures=["SCMP_ARCH_X86_64"], archMap=[{"architecture": "SCMP_ARCH_X86_64"}]),
        "linux.seccomp.archMap: cannot be given together with architectures",
    ),
    (profile(archMap={"architecture": "SCMP_ARCH_X86_64"}), "linux.seccomp.archMap: must be a list"),
    (profile(archMap=["SCMP_ARCH_X86_64"]), "linux.seccomp.archMap[0]: must be an object"),
    (profile(archMap=[{}]), "linux.seccomp.archMap[0].architecture: must be a string"),
    (
        profile(archMap=[{"architecture": "amd64"}]),
        "linux.seccomp.archMap[0].architecture: unknown architecture 'amd64'",
    ),
    (
        profile(archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": "SCMP_ARCH_X86"}]),
        "linux.seccomp.archMap[0].subArchitectures: must be a list",
    ),
    (
        profile(
            archMap=[
                {"architecture": "SCMP_ARCH_AARCH64"},
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_I386"]},
            ]
        ),
        "linux.seccomp.archMap[1].subArchitectures[1]: unknown architecture 'SCMP_ARCH_I386'",
    ),
    (profile(syscalls=[rule(includes=[])]), "linux.seccomp.syscalls[0].includes: must be an object"),
    (profile(syscalls=[rule(excludes="x")]), "linux.seccomp.syscalls[0].excludes: must be an object"),
    (
        profile(syscalls=[rule(includes={"caps": "CAP_SYS_ADMIN"})]),
        "linux.seccomp.syscalls[0].includes.caps: must be a list",
    ),
    (
        profile(syscalls=[rule(excludes={"caps": ["CAP_SYS_ADMIN", 21]})]),
        "linux.seccomp.syscalls[0].excludes.caps[1]: must be a string",
    ),
    (
        profile(syscalls=[rule(includes={"arches": "amd64"})]),
        "linux.seccomp.syscalls[0].includes.arches: must be a list",
    ),
    (
        profile(syscalls=[rule(excludes={"arches": [None]})]),
        "linux.seccomp.syscalls[0].excludes.arches[0]: must be a string",
    ),
    (
        profile(syscalls=[rule(includes={"minKernel": 4.8})]),
        "linux.seccomp.syscalls[0].includes.minKernel: must be a string",
    ),
    (
        profile(syscalls=[rule(includes={"minKernel": "4"})]),
        "linux.seccomp.syscalls[0].includes.minKernel: must be a kernel version like 4.8, not '4'",
    ),
    (
        profile(syscalls=[rule(excludes={"minKernel": "4.x"})]),
        "linux.seccomp.syscalls[0].excludes.minKernel: must be a kernel version like 4.8, not '4.x'",
    ),
    (
        profile(syscalls=[rule(includes={"minKernel": "4.8.0-rc1"})]),
        "linux.seccomp.syscalls[0].includes.minKernel: must be a kernel version like 4.8, not '4.8.0-rc1'",
    ),
    (
        profile(syscalls=[rule(includes={"minKernel": "1.2.3.4"})]),
        "linux.seccomp.syscalls[0].includes.minKernel: must be a kernel version like 4.8, not '1.2.3.4'",
    ),
]


@pytest.mark.parametrize(("value", "message"), ERRORS)
def test_error(value: object, message: str) -> None:
    assert error(value) == f"config.json: {message}"


def test_error_at_the_top_of_a_profile_file() -> None:
    """A profile file is the seccomp object itself: no leading dot, no empty path."""
    assert error(profile(syscalls=[rule(), rule(), rule(), rule(action="X")]), "", "profile.json") == (
        "profile.json: syscalls[3].action: unknown action 'X'"
    )
    assert error([], "", "profile.json") == "profile.json: must be an object"
    assert error({}, "", "profile.json") == "profile.json: defaultAction: is required"


def test_errors_are_one_line() -> None:
    assert error(profile(syscalls=[rule(action="X\nY")])) == (
        "config.json: linux.seccomp.syscalls[0].action: unknown action 'X\\nY'"
    )
    for value, _ in ERRORS:
        assert "\n" not in error(value)


def test_an_entry_left_out_on_this_host_is_still_checked() -> None:
    """So that whether a profile is valid does not depend on the machine it is read on."""
    value = profile(syscalls=[rule(action="X", includes={"caps": ["CAP_SYS_ADMIN"]})])
    assert error(value) == "config.json: linux.seccomp.syscalls[0].action: unknown action 'X'"


# --- round trips -------------------------------------------------------------------------------

FULL = {
    "defaultAction": "SCMP_ACT_KILL_PROCESS",
    "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["open", "openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"},
        {
            "names": ["ioctl"],
            "action": "SCMP_ACT_LOG",
            "args": [
                {"index": 1, "value": 0x5401, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                {"index": 2, "value": 2**64 - 1, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"},
            ],
        },
    ],
}


def filters() -> list[SyscallFilter]:
    return [
        parse(FULL),
        parse(profile(defaultErrnoRet=EPERM)),
        SyscallFilter("SCMP_ACT_ALLOW"),
        sp.default_filter(DEFAULT_CAPABILITIES, "x86_64"),
        sp.default_filter(ALL_CAPABILITIES, "s390x"),
        sp.default_filter(frozenset(), "vax"),
    ]


def test_to_oci() -> None:
    assert parse(FULL).to_oci() == FULL
    assert SyscallFilter("SCMP_ACT_ERRNO", 1).to_oci() == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": [],
        "syscalls": [],
    }


@pytest.mark.parametrize("f", filters(), ids=range(len(filters())))
def test_oci_round_trip(f: SyscallFilter) -> None:
    assert parse(f.to_oci()) == f
    assert parse(json.loads(json.dumps(f.to_oci()))) == f


def test_equality_and_repr() -> None:
    r = SyscallRule(("read",), "SCMP_ACT_ALLOW")
    assert r == SyscallRule(("read",), "SCMP_ACT_ALLOW", None, ())
    assert r != SyscallRule(("read",), "SCMP_ACT_ERRNO")
    assert r != SyscallRule(("read",), "SCMP_ACT_ALLOW", 0)
    assert r != ("read",)
    assert repr(r) == "SyscallRule(('read',), 'SCMP_ACT_ALLOW', None, ())"
    f = SyscallFilter("SCMP_ACT_ALLOW", rules=(r,))
    assert f == SyscallFilter("SCMP_ACT_ALLOW", None, (), (), (r,))
    assert f != SyscallFilter("SCMP_ACT_ALLOW", None, ("SCMP_ARCH_X86",), (), (r,))
    assert repr(f) == (
        "SyscallFilter('SCMP_ACT_ALLOW', None, (), (), (SyscallRule(('read',), 'SCMP_ACT_ALLOW', None, ()),))"
    )


# --- docker's and podman's profile format --------------------------------------------------------

ARCH_MAP = [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    {"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
    {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None},
]


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
        ("aarch64", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
        ("s390x", ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
        ("riscv64", ("SCMP_ARCH_RISCV64",)),
        # A 32-bit host: the entry that names its architecture as a sub-architecture.
        ("i686", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
        ("armv7l", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
        # No entry for the host: the native architecture only, as docker does.
        ("ppc64le", ()),
        ("vax", ()),
    ],
)
def test_arch_map_chooses_the_hosts_entry(machine: str, expected: tuple[str, ...]) -> None:
    assert parse(profile(archMap=ARCH_MAP), machine=machine).architectures == expected


def test_arch_map_prefers_an_entry_for_the_architecture_itself() -> None:
    arch_map = [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
        {"architecture": "SCMP_ARCH_X86"},
    ]
    assert parse(profile(archMap=arch_map), machine="i686").architectures == ("SCMP_ARCH_X86",)
    assert parse(profile(archMap=[], architectures=["SCMP_ARCH_X86"])).architectures == ("SCMP_ARCH_X86",)


def test_singular_name() -> None:
    value = profile(syscalls=[{"name": "getppid", "action": "SCMP_ACT_ALLOW"}, rule(name="", names=["read"])])
    assert parse(value).rules == (
        SyscallRule(("getppid",), "SCMP_ACT_ALLOW"),
        SyscallRule(("read",), "SCMP_ACT_ALLOW"),
    )


def names(value: object, **host: Any) -> list[str]:
    return [n for r in parse(value, **host).rules for n in r.names]


def conditional(*entries: dict[str, Any]) -> dict[str, Any]:
    return profile(
        syscalls=[{"names": [f"call{i}"], "action": "SCMP_ACT_ALLOW", **e} for i, e in enumerate(entries)]
    )


def test_includes_caps_needs_every_cap() -> None:
    value = conditional(
        {"includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"includes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_BOOT"]}},
        {"includes": {"caps": []}},
        {"includes": {"caps": ["CAP_NO_SUCH_THING"]}},
    )
    assert names(value, caps=frozenset()) == ["call2"]
    assert names(value, caps=frozenset({CAP["CAP_SYS_ADMIN"]})) == ["call0", "call2"]
    assert names(value, caps=frozenset({CAP["CAP_SYS_ADMIN"], CAP["CAP_SYS_BOOT"]})) == [
        "call0",
        "call1",
        "call2",
    ]


def test_excludes_caps_drops_on_any_cap() -> None:
    value = conditional(
        {"excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_BOOT"]}},
        {"excludes": {"caps": ["CAP_NO_SUCH_THING"]}},
    )
    assert names(value, caps=frozenset()) == ["call0", "call1", "call2"]
    assert names(value, caps=frozenset({CAP["CAP_SYS_BOOT"]})) == ["call0", "call2"]
    assert names(value, caps=frozenset({CAP["CAP_SYS_ADMIN"]})) == ["call2"]


def test_arches_by_docker_and_uname_names() -> None:
    value = conditional(
        {"includes": {"arches": ["amd64", "x32", "x86"]}},
        {"includes": {"arches": ["x86_64"]}},
        {"includes": {"arches": ["arm", "arm64"]}},
        {"excludes": {"arches": ["s390", "s390x"]}},
        {"includes": {"arches": []}},
    )
    assert names(value, machine="x86_64") == ["call0", "call1", "call3", "call4"]
    assert names(value, machine="aarch64") == ["call2", "call3", "call4"]
    assert names(value, machine="armv7l") == ["call2", "call3", "call4"]
    assert names(value, machine="s390x") == ["call4"]
    assert names(value, machine="vax") == ["call3", "call4"]


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        ("4.7.10", ["call1", "call2"]),
        ("4.8", ["call0", "call1", "call2"]),
        ("4.8.0-1-amd64", ["call0", "call1", "call2"]),
        ("5.9.3", ["call0", "call1", "call2"]),
        ("5.9.10", ["call0", "call2"]),  # numbers, not strings: 5.9.10 >= 5.9.4, 5.9 < 5.10
        ("5.10.0-28-amd64", ["call0"]),
        ("6.1.0-18-amd64", ["call0"]),
        ("", ["call1", "call2"]),
    ],
)
def test_min_kernel(kernel: str, expected: list[str]) -> None:
    value = conditional(
        {"includes": {"minKernel": "4.8"}},
        {"excludes": {"minKernel": "5.9.4"}},
        {"excludes": {"minKernel": "5.10"}},
    )
    assert names(value, kernel=kernel) == expected


def test_conditions_combine() -> None:
    """includes: all must hold; excludes: any one drops the entry."""
    value = conditional(
        {"includes": {"caps": ["CAP_SYS_PTRACE"], "arches": ["amd64"], "minKernel": "4.8"}},
        {"excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
        {"includes": {"arches": ["amd64"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    )
    ptrace, admin = frozenset({CAP["CAP_SYS_PTRACE"]}), frozenset({CAP["CAP_SYS_ADMIN"]})
    assert names(value, caps=ptrace) == ["call0", "call1", "call2"]
    assert names(value, caps=ptrace, kernel="4.4.0") == ["call1", "call2"]
    assert names(value, caps=ptrace, machine="aarch64") == ["call1"]
    assert names(value, caps=ptrace, machine="s390x") == []
    assert names(value, caps=admin) == []


def test_a_docker_style_profile() -> None:
    """The shape of docker's own default profile, read for two hosts."""
    value = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": ARCH_MAP,
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
            },
            {
                "names": ["clone", "mount"],
                "action": "SCMP_ACT_ALLOW",
                "includes": {"caps": ["CAP_SYS_ADMIN"]},
            },
            {
                "names": ["clone3"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": ENOSYS,
                "excludes": {"caps": ["CAP_SYS_ADMIN"]},
            },
        ],
    }
    masked_clone = SyscallRule(
        ("clone",), "SCMP_ACT_ALLOW", None, ((0, 0x7E020000, 0, "SCMP_CMP_MASKED_EQ"),)
    )
    assert parse(value, path="", source="default.json") == SyscallFilter(
        "SCMP_ACT_ERRNO",
        1,
        ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        (),
        (
            SyscallRule(("read", "write"), "SCMP_ACT_ALLOW"),
            SyscallRule(("ptrace",), "SCMP_ACT_ALLOW"),
            SyscallRule(("arch_prctl",), "SCMP_ACT_ALLOW"),
            masked_clone,
            SyscallRule(("clone3",), "SCMP_ACT_ERRNO", ENOSYS),
        ),
    )
    admin_arm = parse(value, caps=frozenset({CAP["CAP_SYS_ADMIN"]}), machine="aarch64", kernel="4.4.0")
    assert admin_arm == SyscallFilter(
        "SCMP_ACT_ERRNO",
        1,
        ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
        (),
        (SyscallRule(("read", "write"), "SCMP_ACT_ALLOW"), SyscallRule(("clone", "mount"), "SCMP_ACT_ALLOW")),
    )
    # What is stored is plain OCI, with the host's choices made.
    stored = admin_arm.to_oci()
    assert "archMap" not in stored
    assert parse(stored, machine="x86_64") == admin_arm


def test_capability_names_are_specs() -> None:
    """seccomp_profile repeats spec's list rather than import it (spec imports seccomp_profile)."""
    assert sp._CAPABILITIES == spec.CAPABILITIES
    assert sp._CAPABILITY_NUMBERS == spec.CAPABILITY_NUMBERS


# --- pyctr's default profile -------------------------------------------------------------------

# How the kernel compares an argument v with a rule's value a (and valueTwo b).
MATCH: dict[str, Callable[[int, int, int], bool]] = {
    "SCMP_CMP_NE": lambda v, a, b: v != a,
    "SCMP_CMP_LT": lambda v, a, b: v < a,
    "SCMP_CMP_LE": lambda v, a, b: v <= a,
    "SCMP_CMP_EQ": lambda v, a, b: v == a,
    "SCMP_CMP_GE": lambda v, a, b: v >= a,
    "SCMP_CMP_GT": lambda v, a, b: v > a,
    "SCMP_CMP_MASKED_EQ": lambda v, a, b: v & a == b,
}


def outcome(f: SyscallFilter, name: str, *args: int) -> tuple[str, int | None]:
    """What the filter does to a call: (action, errno), the default when no rule matches."""
    found = {
        (r.action, r.errno)
        for r in f.rules
        if name in r.names and all(MATCH[op](args[i] if i < len(args) else 0, a, b) for i, a, b, op in r.args)
    }
    assert len(found) <= 1, f"{name}{args}: rules disagree: {found}"
    return found.pop() if found else (f.default_action, f.default_errno)


ALLOW: tuple[str, int | None] = ("SCMP_ACT_ALLOW", None)
DENY: tuple[str, int | None] = ("SCMP_ACT_ERRNO", EPERM)
CLONE_THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000


def default(caps: frozenset[int] = DEFAULT_CAPABILITIES, machine: str = "x86_64") -> SyscallFilter:
    return sp.default_filter(caps, machine)


def test_default_denies_with_eperm() -> None:
    f = default()
    assert (f.default_action, f.default_errno, f.flags) == ("SCMP_ACT_ERRNO", EPERM, ())
    assert outcome(f, "no_such_call") == DENY
    assert outcome(f, "read") == ALLOW


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        ("aarch64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
        ("arm64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
        ("armv7l", ["SCMP_ARCH_ARM"]),
        ("i686", ["SCMP_ARCH_X86"]),
        ("s390x", ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]),
        ("ppc64le", ["SCMP_ARCH_PPC64LE"]),
        ("riscv64", ["SCMP_ARCH_RISCV64"]),
        ("vax", []),
    ],
)
def test_default_architectures(machine: str, expected: list[str]) -> None:
    assert sp.default_profile(DEFAULT_CAPABILITIES, machine)["architectures"] == expected
    assert sp.architectures(machine) == tuple(expected)


@pytest.mark.parametrize("machine", ["x86_64", "s390x"])
def test_default_clone_without_namespaces_unless_sys_admin(machine: str) -> None:
    # s390's clone has the flags second.
    flags_at = 1 if machine == "s390x" else 0

    def clone(f: SyscallFilter, flags: int) -> tuple[str, int | None]:
        return outcome(f, "clone", *([0] * flags_at), flags)

    f = default(machine=machine)
    assert clone(f, CLONE_THREAD_FLAGS) == ALLOW
    assert clone(f, 17) == ALLOW  # fork: SIGCHLD
    for flag in (CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, 0x02000000, 0x04000000, 0x08000000, 0x20000000):
        assert clone(f, flag | 17) == DENY
    assert outcome(f, "clone3") == ("SCMP_ACT_ERRNO", ENOSYS)
    admin = default(DEFAULT_CAPABILITIES | {CAP["CAP_SYS_ADMIN"]}, machine)
    assert clone(admin, CLONE_NEWUSER | CLONE_NEWNS | 17) == ALLOW
    assert outcome(admin, "clone3") == ALLOW


def test_default_clone_rule() -> None:
    clone = [r for r in default().rules if "clone" in r.names]
    assert clone == [
        SyscallRule(("clone",), "SCMP_ACT_ALLOW", None, ((0, 0x7E020000, 0, "SCMP_CMP_MASKED_EQ"),))
    ]


@pytest.mark.parametrize(
    "name",
    "mount umount2 fsopen fsmount move_mount open_tree unshare setns pivot_root keyctl add_key "
    "request_key userfaultfd io_uring_setup io_uring_enter io_uring_register kexec_load kexec_file_load "
    "init_module finit_module delete_module reboot swapon swapoff bpf perf_event_open acct "
    "settimeofday clock_settime iopl ioperm vhangup syslog sethostname setdomainname open_by_handle_at "
    "name_to_handle_at kcmp process_vm_readv pidfd_getfd mbind set_mempolicy quotactl lookup_dcookie "
    "fanotify_init vm86 vm86old uselib _sysctl nfsservctl create_module".split(),
)
def test_default_denies_without_capabilities(name: str) -> None:
    assert outcome(default(), name) == DENY


@pytest.mark.parametrize(
    "name",
    "keyctl add_key request_key userfaultfd io_uring_setup io_uring_enter io_uring_register kexec_load "
    "kexec_file_load swapon swapoff pivot_root vm86 vm86old uselib _sysctl nfsservctl create_module "
    "move_pages migrate_pages".split(),
)
def test_never_allowed_even_with_every_capability(name: str) -> None:
    assert outcome(default(ALL_CAPABILITIES), name) == DENY


@pytest.mark.parametrize(
    ("cap", "calls"),
    [
        ("CAP_SYS_ADMIN", "mount umount2 fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr "
         "unshare setns sethostname setdomainname bpf perf_event_open fanotify_init name_to_handle_at "
         "quotactl quotactl_fd lookup_dcookie syslog"),
        ("CAP_SYS_BOOT", "reboot"),
        ("CAP_SYS_CHROOT", "chroot"),
        ("CAP_SYS_MODULE", "init_module finit_module delete_module"),
        ("CAP_SYS_PACCT", "acct"),
        ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev"),
        ("CAP_SYS_RAWIO", "iopl ioperm"),
        ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
        ("CAP_SYS_TTY_CONFIG", "vhangup"),
        ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
        ("CAP_SYSLOG", "syslog"),
        ("CAP_BPF", "bpf"),
        ("CAP_PERFMON", "perf_event_open"),
        ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ],
)  # fmt: skip
def test_default_allows_by_capability(cap: str, calls: str) -> None:
    without = default(frozenset())
    holder = default(frozenset({CAP[cap]}))
    for name in calls.split():
        assert outcome(without, name) == DENY, name
        assert outcome(holder, name) == ALLOW, name


def test_default_capabilities_allow_chroot_only() -> None:
    """docker's default set holds SYS_CHROOT, and no other capability the profile asks about."""
    by_cap = {n for r in default().rules[len(sp.DEFAULT_GROUPS) :] for n in r.names}
    assert {"chroot"} <= by_cap
    assert outcome(default(), "chroot") == ALLOW
    assert outcome(default(DEFAULT_CAPABILITIES - {CAP["CAP_SYS_CHROOT"]}), "chroot") == DENY


def test_default_allows_ordinary_calls() -> None:
    f = default()
    for name in (
        "openat read write close mmap execve exit_group wait4 futex rt_sigaction clock_gettime socketpair "
        "connect sendmsg shmget mq_open sched_setaffinity epoll_pwait ptrace adjtimex capset setuid prctl "
        "seccomp chown32 fcntl64 _llseek socketcall ipc arch_prctl modify_ldt pidfd_open getrandom"
    ).split():
        assert outcome(f, name) == ALLOW, name


def test_default_personality() -> None:
    f = default()
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert outcome(f, "personality", persona) == ALLOW
    for persona in (0x0040000, 0x0400000, 0x1, 0x20009):  # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...
        assert outcome(f, "personality", persona) == DENY


def test_default_socket_without_vsock() -> None:
    f = default(ALL_CAPABILITIES)
    for family in (1, 2, 10, 16, 17):  # unix, inet, inet6, netlink, packet
        assert outcome(f, "socket", family) == ALLOW
    assert outcome(f, "socket", 40) == DENY


def test_default_architecture_specific_calls() -> None:
    everything = ALL_CAPABILITIES
    assert outcome(default(everything, "x86_64"), "arch_prctl") == ALLOW
    assert outcome(default(everything, "x86_64"), "iopl") == ALLOW
    for machine in ("aarch64", "s390x", "ppc64le", "riscv64"):
        f = default(everything, machine)
        for name in ("arch_prctl", "modify_ldt", "iopl", "ioperm"):
            assert outcome(f, name) == DENY, (machine, name)
    assert outcome(default(everything, "aarch64"), "set_tls") == ALLOW
    assert outcome(default(everything, "x86_64"), "set_tls") == DENY
    assert outcome(default(everything, "s390x"), "s390_runtime_instr") == ALLOW
    assert outcome(default(everything, "x86_64"), "s390_runtime_instr") == DENY
    assert outcome(default(everything, "ppc64le"), "swapcontext") == ALLOW
    assert outcome(default(everything, "riscv64"), "riscv_flush_icache") == ALLOW


def test_default_groups() -> None:
    assert list(sp.DEFAULT_GROUPS) == [
        "paths",
        "file status",
        "extended attributes",
        "file descriptors",
        "reads and writes",
        "asynchronous I/O",
        "waiting for events",
        "memory",
        "processes",
        "tracing",
        "threads",
        "user and group ids",
        "signals",
        "time",
        "scheduling",
        "network",
        "inter-process communication",
    ]
    every = [n for group in sp.DEFAULT_GROUPS.values() for n in group]
    assert len(every) == len(set(every)), "a call is in two groups"


@pytest.mark.parametrize("caps", [frozenset(), DEFAULT_CAPABILITIES, ALL_CAPABILITIES])
def test_default_allows_each_call_once(caps: frozenset[int]) -> None:
    unconditional = [
        n for r in default(caps).rules if not r.args and r.action == "SCMP_ACT_ALLOW" for n in r.names
    ]
    assert len(unconditional) == len(set(unconditional))


def test_default_profile_is_json() -> None:
    data = sp.default_profile(ALL_CAPABILITIES, "x86_64")
    assert parse(json.loads(json.dumps(data)), caps=ALL_CAPABILITIES) == default(ALL_CAPABILITIES)


# --- the default profile against the real libseccomp --------------------------------------------


@pytest.fixture(scope="module")
def seccomp() -> Any:
    """Debian's python3-seccomp (libseccomp's own binding), outside any virtualenv."""
    if "/usr/lib/python3/dist-packages" not in sys.path:
        sys.path.append("/usr/lib/python3/dist-packages")
    pytest.importorskip("seccomp")
    return importlib.import_module("seccomp")


def profile_names(machine: str) -> set[str]:
    return {n for r in default(ALL_CAPABILITIES, machine).rules for n in r.names}


def test_every_default_name_is_known_to_libseccomp(seccomp: Any) -> None:
    """Known on x86_64 (a 32-bit name resolves to a pseudo number there, but is known)."""
    names = profile_names("x86_64") | {n for r in default(frozenset()).rules for n in r.names}
    unknown = {n for n in names if seccomp.resolve_syscall(seccomp.Arch.X86_64, n) == -1}
    assert unknown <= NEWER_THAN_LIBSECCOMP
    assert NEWER_THAN_LIBSECCOMP <= names  # the list above stays about the profile


@pytest.mark.parametrize(
    ("machine", "arches"),
    [("x86_64", ("X86_64", "X86", "X32")), ("aarch64", ("AARCH64", "ARM")), ("s390x", ("S390X", "S390"))],
)
def test_architecture_specific_names_exist_there(seccomp: Any, machine: str, arches: tuple[str, ...]) -> None:
    specific = profile_names(machine) - profile_names("vax")  # a machine with no calls of its own
    assert specific
    missing = {
        n for n in specific if all(seccomp.resolve_syscall(getattr(seccomp.Arch, a), n) < 0 for a in arches)
    }
    assert missing <= NEWER_THAN_LIBSECCOMP


def build(seccomp: Any, f: SyscallFilter) -> Any:
    """f as a libseccomp filter, as a loader would make it (never loaded into this process)."""
    ops = {name: getattr(seccomp, name.removeprefix("SCMP_CMP_")) for name in sp.OPERATORS}
    actions = {"SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_LOG": seccomp.LOG}

    def action(name: str, errno: int | None) -> Any:
        return seccomp.ERRNO(EPERM if errno is None else errno) if name == "SCMP_ACT_ERRNO" else actions[name]

    sf = seccomp.SyscallFilter(action(f.default_action, f.default_errno))
    wanted = [getattr(seccomp.Arch, a.removeprefix("SCMP_ARCH_")) for a in f.architectures]
    # A filter starts with the native architecture; one for another machine goes without it,
    # first, as libseccomp will not mix big-endian architectures (s390x) with little-endian ones.
    if wanted and seccomp.system_arch() not in [a & 0xFFFFFFFF for a in wanted]:
        sf.remove_arch(seccomp.Arch.NATIVE)
    for arch in wanted:
        if not sf.exist_arch(arch):
            sf.add_arch(arch)
    for r in f.rules:
        args = [seccomp.Arg(i, ops[op], a, b) for i, a, b, op in r.args]
        for name in r.names:
            if name not in NEWER_THAN_LIBSECCOMP:
                sf.add_rule(action(r.action, r.errno), name, *args)
    return sf


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "s390x", "ppc64le", "riscv64"])
@pytest.mark.parametrize(
    "caps", [frozenset(), DEFAULT_CAPABILITIES, ALL_CAPABILITIES], ids=["none", "docker", "all"]
)
def test_libseccomp_accepts_the_default_filter(
    seccomp: Any, machine: str, caps: frozenset[int], tmp_path: Path
) -> None:
    sf = build(seccomp, sp.default_filter(caps, machine))
    with open(tmp_path / "filter.bpf", "wb") as out:
        sf.export_bpf(out)
    # BPF instructions are 8 bytes each; a filter of several hundred calls is thousands of bytes.
    size = (tmp_path / "filter.bpf").stat().st_size
    assert size % 8 == 0 and size > 2000
