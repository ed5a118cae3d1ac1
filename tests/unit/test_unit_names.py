"""pyctr_systemd.unit: cgroupsPath to unit and slice, annotations to unit properties."""

from __future__ import annotations

import pytest

from pyctr_systemd import unit
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.limits import Property


def names(cgroups_path: str, systemd_cgroup: bool, container_id: str = "c1") -> tuple[str, str, list[str]]:
    name, warnings = unit.from_cgroups_path(cgroups_path, systemd_cgroup, container_id)
    return name.unit, name.slice, warnings


def error(cgroups_path: str) -> str:
    with pytest.raises(InvalidArgument) as e:
        unit.from_cgroups_path(cgroups_path, True, "c1")
    return str(e.value)


# --- cgroupsPath ----------------------------------------------------------------------


@pytest.mark.parametrize("systemd_cgroup", [False, True])
def test_no_cgroups_path_is_the_default_unit(systemd_cgroup: bool) -> None:
    assert names("", systemd_cgroup, "web-1") == ("pyctr-web-1.scope", "pyctr.slice", [])


def test_cgroupfs_path_without_systemd_cgroup_is_a_warning() -> None:
    assert names("/default/c1", False) == (
        "pyctr-c1.scope",
        "pyctr.slice",
        [
            "linux.cgroupsPath /default/c1 is a cgroupfs path, which pyctr does not use: the container "
            "is pyctr-c1.scope in pyctr.slice (--systemd-cgroup reads slice:prefix:name)"
        ],
    )


def test_slice_prefix_name_without_systemd_cgroup_is_a_warning_too() -> None:
    unit_name, slice_name, warnings = names("system.slice:docker:abc", False)
    assert (unit_name, slice_name) == ("pyctr-c1.scope", "pyctr.slice")
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("cgroups_path", "unit_name", "slice_name"),
    [
        ("system.slice:docker:abc", "docker-abc.scope", "system.slice"),
        ("machine.slice:libpod:0123abcd", "libpod-0123abcd.scope", "machine.slice"),
        (":crio:x", "crio-x.scope", "pyctr.slice"),
        ("user.slice::x", "x.scope", "user.slice"),
        ("a-b.slice:p:n_1.2", "p-n_1.2.scope", "a-b.slice"),
        ("system.slice:pre\\x2d:n", "pre\\x2d-n.scope", "system.slice"),
    ],
)
def test_systemd_cgroups_path(cgroups_path: str, unit_name: str, slice_name: str) -> None:
    assert names(cgroups_path, True) == (unit_name, slice_name, [])


@pytest.mark.parametrize("cgroups_path", ["/default/c1", "a:b", "a:b:c:d", "system.slice"])
def test_systemd_cgroups_path_needs_three_parts(cgroups_path: str) -> None:
    assert error(cgroups_path) == (
        f"config.json: linux.cgroupsPath: expected slice:prefix:name with --systemd-cgroup, "
        f"not {cgroups_path!r}"
    )


def test_container_in_a_slice_of_its_own_is_refused() -> None:
    assert error("system.slice:p:own.slice") == (
        "config.json: linux.cgroupsPath: a container in a slice of its own is not supported"
    )


def test_invalid_unit_name() -> None:
    assert error("system.slice:my prefix:n") == (
        "config.json: linux.cgroupsPath: 'my prefix-n.scope' is not a valid unit name"
    )
    assert (
        error("system.slice:p:a/b")
        == "config.json: linux.cgroupsPath: 'p-a/b.scope' is not a valid unit name"
    )


def test_too_long_unit_name() -> None:
    long_name = "n" * 250
    assert error(f"system.slice:prefix:{long_name}") == (
        f"config.json: linux.cgroupsPath: 'prefix-{long_name}.scope' is not a valid unit name"
    )


def test_invalid_slice_name() -> None:
    assert error("my slice:p:n") == "config.json: linux.cgroupsPath: 'my slice' is not a valid slice name"
    assert error("machine:p:n") == "config.json: linux.cgroupsPath: 'machine' is not a valid slice name"


# --- GVariant text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", ("b", True)),
        ("false", ("b", False)),
        (" true ", ("b", True)),
        ("'text'", ("s", "text")),
        ('"text"', ("s", "text")),
        ("''", ("s", "")),
        ("'a b'", ("s", "a b")),
        ("uint64 100", ("t", 100)),
        ("uint64 0x10", ("t", 16)),
        ("int64 -5", ("x", -5)),
        ("uint32 7", ("u", 7)),
        ("int32 -7", ("i", -7)),
        ("uint16 8", ("q", 8)),
        ("int16 -8", ("n", -8)),
        ("byte 255", ("y", 255)),
        ("@t 100", ("t", 100)),
        ("@x -1", ("x", -1)),
        ("@u 3", ("u", 3)),
        ("100", ("i", 100)),
        ("-3", ("i", -3)),
        ("['a', 'b']", ("as", ["a", "b"])),
        ('["a"]', ("as", ["a"])),
        ("[]", ("as", [])),
    ],
)
def test_parse_property_value(text: str, expected: tuple[str, object]) -> None:
    assert unit.parse_property_value(text) == expected


def test_array_of_strings_with_a_comma_inside_a_string() -> None:
    # Valid GVariant text (runc reads it with dbus.ParseVariant): one string, "a,b".
    assert unit.parse_property_value("['a,b', 'c']") == ("as", ["a,b", "c"])


@pytest.mark.parametrize("text", ["yes", "uint64", "uint64 x", "[1, 2]", "['a', 1]", "1.5", "'open"])
def test_parse_property_value_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        unit.parse_property_value(text)


def test_annotation_properties() -> None:
    annotations = {
        "org.systemd.property.TimeoutStopUSec": "uint64 5000000",
        "org.opencontainers.image.title": "x",
        "org.systemd.property.MemoryHigh": "uint64 1048576",
        "org.systemd.property.CPUAccounting": "true",
    }
    assert unit.annotation_properties(annotations) == [
        ("TimeoutStopUSec", "t", 5000000),
        ("MemoryHigh", "t", 1048576),
        ("CPUAccounting", "b", True),
    ]


@pytest.mark.parametrize(
    "name",
    ["ExecStopPost", "Wants", "Delegate", "CollectMode", "DeviceAllow", "User", "CPUSchedulingPolicy", ""],
)
def test_annotations_set_only_resource_and_accounting_properties(name: str) -> None:
    # Anything else of a unit runs commands, starts units, grants devices or changes who runs.
    with pytest.raises(InvalidArgument) as e:
        unit.annotation_properties({f"org.systemd.property.{name}": "'x'"})
    assert str(e.value) == (
        f"config.json: annotations.org.systemd.property.{name}: {name} is not a resource or accounting "
        "property, the only ones pyctr sets from annotations"
    )


def test_annotation_properties_without_any() -> None:
    assert unit.annotation_properties({}) == []
    assert unit.annotation_properties({"org.systemd.propertyX": "true", "a": "b"}) == []


def test_unreadable_annotation_value() -> None:
    with pytest.raises(InvalidArgument) as e:
        unit.annotation_properties({"org.systemd.property.CPUWeight": "a lot"})
    assert str(e.value) == (
        "config.json: annotations.org.systemd.property.CPUWeight: cannot read 'a lot' as a D-Bus value "
        "(examples: uint64 100, 'text', true)"
    )


# --- the scope --------------------------------------------------------------------------


def test_scope_properties() -> None:
    extra: list[Property] = [("MemoryMax", "t", 1024), ("Delegate", "b", True)]
    assert unit.scope_properties("pyctr container c1", "system.slice", 4242, extra) == [
        ("Description", "s", "pyctr container c1"),
        ("Slice", "s", "system.slice"),
        ("PIDs", "au", [4242]),
        ("CollectMode", "s", "inactive-or-failed"),
        ("TimeoutStopUSec", "t", 10_000_000),
        ("CPUAccounting", "b", True),
        ("MemoryAccounting", "b", True),
        ("TasksAccounting", "b", True),
        ("MemoryMax", "t", 1024),
        ("Delegate", "b", True),
    ]


def test_scope_properties_without_extras() -> None:
    assert [name for name, _, _ in unit.scope_properties("d", "s.slice", 1, [])] == [
        "Description",
        "Slice",
        "PIDs",
        "CollectMode",
        "TimeoutStopUSec",
        "CPUAccounting",
        "MemoryAccounting",
        "TasksAccounting",
    ]


def test_an_annotation_nested_too_deeply_is_one_line() -> None:
    with pytest.raises(InvalidArgument) as e:
        unit.annotation_properties({"org.systemd.property.MemoryMax": "[" * 5000 + "]" * 5000})
    assert str(e.value).startswith("config.json: annotations.org.systemd.property.MemoryMax: cannot read")
