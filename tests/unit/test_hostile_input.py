"""Hostile config.json and resources, checked without root: each test fails if the input passes.

The integration twins (tests/integration/test_hostile_bundles.py) show what each
input does to a real container; here the parsers must refuse it, quickly, with
an error naming the JSON path.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from pyctr_systemd import spec, unit
from pyctr_systemd.errors import InvalidArgument, PyctrError

HUGE_CPUS = "0-99999999"


def minimal(**linux: object) -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"]},
        "linux": {"namespaces": [{"type": "mount"}], **linux},
    }


def refused(data: object) -> str:
    with pytest.raises(PyctrError) as e:
        spec.parse(data, "/b")
    assert "\n" not in str(e.value)
    return str(e.value)


class TooSlow(Exception):
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail what runs inside if it takes longer than `seconds` (SIGALRM interrupts Python code)."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TooSlow(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- linux.devices: a node outside /dev ------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/dev/../etc/evil", "/dev/./../etc/evil", "/dev/pts/../../etc/evil", "/dev/.."]
)
def test_a_device_path_that_leaves_dev_is_refused(path: str) -> None:
    """Attack: a path that starts with /dev/ but normalises to somewhere else (/etc/evil)."""
    message = refused(minimal(devices=[{"path": path, "type": "c", "major": 1, "minor": 3}]))
    assert "linux.devices[0].path" in message and "below /dev" in message, message


def test_a_device_below_dev_is_still_allowed() -> None:
    devices = spec.parse(
        minimal(devices=[{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200}]), "/b"
    )
    assert [d.path for d in devices.devices] == ["/dev/net/tun"]


# --- cpu lists that take forever ----------------------------------------------------


@pytest.mark.parametrize("key", ["cpus", "mems"])
def test_a_huge_cpu_list_is_refused_quickly(key: str) -> None:
    """Attack: 0-99999999 as linux.resources.cpu.cpus (or mems): a mask of a hundred million
    bits, built one bit at a time, keeps pyctr busy for minutes."""
    with deadline(5):
        message = refused(minimal(resources={"cpu": {key: HUGE_CPUS}}))
    assert f"linux.resources.cpu.{key}" in message, message


def test_a_huge_cpu_list_for_update_is_refused_quickly() -> None:
    """Attack: the same list in `pyctr update -r FILE`, whose JSON path starts at resources."""
    with deadline(5), pytest.raises(PyctrError) as e:
        spec.parse_resources({"cpu": {"cpus": HUGE_CPUS}}, [], "resources")
    assert "resources.cpu.cpus" in str(e.value)


def test_a_real_cpu_list_is_still_allowed() -> None:
    with deadline(5):
        config = spec.parse(minimal(resources={"cpu": {"cpus": "0-3,6", "mems": "0"}}), "/b")
    assert (config.resources.cpu_cpus, config.resources.cpu_mems) == ("0-3,6", "0")


# --- JSON too deep for Python's decoder ----------------------------------------------


def test_deeply_nested_config_json_is_a_spec_error(tmp_path: Path) -> None:
    """Attack: 100000 nested lists in config.json: json.load raises RecursionError, which is
    no PyctrError, so pyctr would die with a traceback."""
    text = json.dumps(minimal())
    (tmp_path / "config.json").write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(PyctrError) as e:
        spec.load(str(tmp_path))
    assert "config.json" in str(e.value) and "\n" not in str(e.value), str(e.value)


# --- org.systemd.property.* annotations: resources only ---------------------------------


def annotation_properties(name: str, value: str) -> list[tuple[str, str, object]]:
    """What create and define make of one annotation (whichever of the two steps refuses it)."""
    data = minimal()
    data["annotations"] = {f"org.systemd.property.{name}": value}
    return unit.annotation_properties(spec.parse(data, "/b").annotations)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ExecStartPre", "'/bin/touch /tmp/marker'"),
        ("ExecStopPost", "'/bin/touch /tmp/marker'"),
        ("Wants", "['poweroff.target']"),
        ("OnFailure", "['rescue.target']"),
        ("FailureAction", "'reboot'"),
        ("User", "'root'"),
        ("Environment", "['LD_PRELOAD=/tmp/evil.so']"),
        ("Slice", "'system.slice'"),
        ("Delegate", "false"),
        ("CPUSchedulingPolicy", "'fifo'"),  # CPU*, but not a limit: real-time starves the host
        ("IOSchedulingClass", "'realtime'"),  # IO*, likewise
    ],
)
def test_a_non_resource_annotation_is_refused(name: str, value: str) -> None:
    """Attack: an annotation that would give the container's unit a setting of the bundle's
    choosing (commands, dependencies, actions, identity, scheduling)."""
    with pytest.raises(InvalidArgument) as e:
        annotation_properties(name, value)
    assert f"annotations.org.systemd.property.{name}" in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MemoryHigh", "uint64 50331648", ("t", 50331648)),
        ("TimeoutStopUSec", "uint64 4000000", ("t", 4000000)),
        ("CPUWeight", "uint64 50", ("t", 50)),
        ("TasksMax", "uint64 20", ("t", 20)),
        ("IOWeight", "uint64 200", ("t", 200)),
        ("MemoryAccounting", "true", ("b", True)),
    ],
)
def test_a_resource_annotation_is_still_allowed(name: str, value: str, expected: tuple[str, object]) -> None:
    assert annotation_properties(name, value) == [(name, *expected)]
