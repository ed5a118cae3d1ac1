"""Every entry point's input, fuzzed (hypothesis): an answer, or one of pyctr's own errors in
one line; never another exception, which the CLI would print as a traceback.

config.json and a state record start from real ones with one part replaced by anything JSON
can hold; the command line of `run` mixes its real options with random words.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyctr_systemd import cli, definitions, names, run_config, spec
from pyctr_systemd.cli import run
from pyctr_systemd.errors import PyctrError
from pyctr_systemd.state import Record
from tests.unit.test_state import record

DATA = Path(__file__).resolve().parent / "data"
RUNC_SPEC = json.loads((DATA / "runc-spec.json").read_text())
SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every place in a JSON document, by its keys and indexes."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: object) -> Any:
    """`base` with one part replaced by any JSON value, or removed."""
    document = copy.deepcopy(base)
    where = draw(st.sampled_from(paths(document)[1:]))
    parent: Any = document
    for key in where[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = draw(json_values)
    return document


def one_line(e: PyctrError) -> None:
    """What the CLI prints of it: a message, on one line."""
    assert str(e) and cli.one_line(str(e)).isprintable(), repr(str(e))


@SETTINGS
@given(mutated(RUNC_SPEC))
def test_config_json(data: Any) -> None:
    try:
        spec.parse(data, "/bundle")
    except PyctrError as e:
        one_line(e)


@SETTINGS
@given(
    mutated(
        {"memory": {"limit": 1, "swap": 2}, "cpu": {"shares": 2, "quota": 1, "period": 1000, "cpus": "0"}}
    )
)
def test_update_resources(data: Any) -> None:
    try:
        spec.parse_resources(data, [], "", "stdin")
    except PyctrError as e:
        one_line(e)


@SETTINGS
@given(mutated(record().as_json()))
def test_state_record(data: Any) -> None:
    try:
        Record.from_json(data)
    except ValueError:
        pass  # Store.load makes it one line naming the file


@SETTINGS
@given(st.text())
def test_names(name: str) -> None:
    try:
        assert names.validate(name) == name
    except PyctrError as e:
        one_line(e)


words = st.sampled_from(sorted(run._BY_NAME)) | st.text(max_size=8) | st.just("--")


@SETTINGS
@given(st.lists(words, max_size=8))
def test_run_command_line(args: list[str]) -> None:
    values = run.parse(args)
    if values is None:
        return  # click parses it, and says what it refuses
    try:
        run_config.build(**values)
    except PyctrError as e:
        one_line(e)


DEFINITION = {
    "restart": "no",
    "run": {
        "name": None,
        "hostname": None,
        "env": ["A=1"],
        "cwd": "/",
        "memory": "64M",
        "memory_swap": None,
        "cpu_shares": None,
        "cpu_weight": None,
        "cpus": 0.5,
        "pids_limit": 10,
        "no_pivot": False,
        "command_only": True,
        "args": ["--", "true"],
        "security_opt": [],
        "detach": False,
        "machine": False,
    },
}


@SETTINGS
@given(mutated(DEFINITION))
def test_definition(data: Any) -> None:
    """What `systemctl start pyctr@NAME` reads: a definition file an admin may have edited."""
    try:
        definitions._check(data)
    except ValueError:
        return  # load() says it in one line naming the file
    if "bundle" not in data:
        try:
            values: dict[str, Any] = {**definitions.run_values(data), "name": "box"}
            run_config.build(**values)
        except PyctrError as e:
            one_line(e)
