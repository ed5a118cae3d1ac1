"""runc's hot verbs: the click-free parser (cli.verbs) against click's commands."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pyctr_systemd.cli import app, verbs
from pyctr_systemd.state import DEFAULT_ROOT

PLAIN = [
    ["create", "c1"],
    ["create", "--bundle", "/b", "--pid-file", "/p", "c1"],
    ["--systemd-cgroup", "create", "-b", "/b", "--pid-file=/p", "--console-socket", "/s", "--no-pivot", "c1"],
    [
        "--root",
        "/r",
        "--log",
        "/l",
        "--log-format",
        "json",
        "create",
        "--bundle=/b",
        "--no-new-keyring",
        "c1",
    ],
    ["--log-format=json", "--log=/l", "start", "c1"],
    ["state", "c1"],
    ["kill", "c1"],
    ["kill", "c1", "9"],
    ["kill", "--all", "c1", "KILL"],
    ["kill", "-a", "c1", "SIGUSR1"],
    ["delete", "c1"],
    ["delete", "--force", "c1"],
    ["--root=/r", "delete", "-f", "c1"],
    ["run", "-d", "--bundle", "/b", "c1"],
    ["run", "--detach", "-b", "/b", "--pid-file", "/p", "c1"],
]
LEFT_TO_CLICK = [
    ["create", "--help"],
    ["create"],
    ["create", "--bogus", "c1"],
    ["create", "c1", "c2"],
    ["create", "-b=/b", "c1"],
    ["--log-format", "xml", "state", "c1"],
    ["kill", "c1", "9", "extra"],
    ["kill", "-af", "c1"],
    ["kill", "c1", "--all"],
    ["kill", "c1", "-a", "9"],
    ["delete", "--forc", "c1"],
    ["state"],
    ["list"],
    ["exec", "c1", "sh"],
    ["--root"],
    ["run", "/rootfs", "--", "sh"],
    [],
]


def click_call(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, object], dict[str, object]]:
    """(verb, globals, arguments) that click's command hands to cli.verbs."""
    calls: list[tuple[str, dict[str, object], dict[str, object]]] = []
    for name in ("create", "run", "start", "state", "kill", "delete"):
        original = getattr(verbs, name)

        def record(*a: object, _name: str = name, _original: object = original, **k: object) -> int:
            bound = inspect.signature(_original).bind(*a, **k)  # type: ignore[arg-type]
            bound.apply_defaults()
            g = bound.arguments.pop("g")
            calls.append((_name, {"root": g.root, "systemd_cgroup": g.systemd_cgroup}, dict(bound.arguments)))
            return 0

        monkeypatch.setattr(verbs, name, record)
    app.cli.main(args, prog_name="pyctr", standalone_mode=False)
    assert len(calls) == 1
    return calls[0]


def fast_call(args: list[str]) -> tuple[str, dict[str, object], dict[str, object]]:
    found = verbs.read(args)
    assert found is not None
    verb, g, kwargs = found
    bound = inspect.signature(getattr(verbs, verb)).bind(None, **kwargs)
    bound.apply_defaults()
    bound.arguments.pop("g")
    globals_ = {"root": g.get("root", DEFAULT_ROOT), "systemd_cgroup": bool(g.get("systemd_cgroup"))}
    return verb, globals_, dict(bound.arguments)


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_fast_path_reads_like_click(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert fast_call(args) == click_call(args, monkeypatch)


@pytest.mark.parametrize("args", LEFT_TO_CLICK, ids=" ".join)
def test_fast_path_leaves_the_rest_to_click(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert verbs.read(args) is None
