"""Declared containers: `pyctr define NAME`, run by systemd as pyctr@NAME.service.

A definition is the `pyctr run` command it stands for: its option values,
stored as JSON in /etc/pyctr/NAME.json, so `systemctl start pyctr@NAME` runs
exactly what `pyctr run` with those options would (same checks, same defaults,
the default rootfs with its throwaway write layer included), and a definition
is read and written by the same code as the command line. The limits and the
restart policy are systemd's business: they go, rendered from
templates/dropin.conf.j2, into a drop-in of the template unit, where
`systemctl show`, `systemctl edit` and daemon-reload see them like any other
setting.
"""

from __future__ import annotations

import json
import os

from pyctr_systemd import names, templates
from pyctr_systemd.errors import InvalidArgument, PyctrError
from pyctr_systemd.limits import Limits, Property, unit_properties

CONFIG_DIR = "/etc/pyctr"
UNIT_DIR = "/etc/systemd/system"
RESTART_POLICIES = ("no", "on-failure", "always")


class NotDefined(PyctrError):
    def __init__(self, name: str) -> None:
        super().__init__(f"container {name} is not defined (pyctr define {name} ...)")


def service(name: str) -> str:
    return f"pyctr@{name}.service"


def path(name: str) -> str:
    return os.path.join(CONFIG_DIR, f"{names.validate(name)}.json")


def dropin_path(name: str) -> str:
    return os.path.join(UNIT_DIR, f"{service(names.validate(name))}.d", "50-pyctr.conf")


def unit_settings(props: list[Property]) -> list[tuple[str, str]]:
    """Unit-file settings for D-Bus properties: the same names, except CPU quota."""
    settings = []
    for name, _, value in props:
        if name == "CPUQuotaPerSecUSec":
            settings.append(("CPUQuota", f"{int(value) / 10_000:g}%"))  # type: ignore[call-overload]
        else:
            settings.append((name, str(value)))
    return settings


def render_dropin(name: str, restart: str, limits: Limits, unified: bool) -> str:
    if restart not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid --restart {restart!r}: use {', '.join(RESTART_POLICIES)}")
    props: list[Property] = [("DevicePolicy", "s", "closed"), *unit_properties(limits, unified)]
    return templates.render("dropin.conf.j2", container=name, restart=restart, settings=unit_settings(props))


def save(name: str, values: dict[str, object], restart: str, dropin: str) -> None:
    """Write the definition and its drop-in (replacing an earlier one)."""
    os.makedirs(CONFIG_DIR, 0o755, exist_ok=True)
    _write(path(name), json.dumps({"name": name, "restart": restart, "run": values}, indent=2) + "\n")
    os.makedirs(os.path.dirname(dropin_path(name)), 0o755, exist_ok=True)
    _write(dropin_path(name), dropin)


def _write(target: str, text: str) -> None:
    tmp = f"{target}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, target)


def load(name: str) -> dict[str, object]:
    """The stored `pyctr run` values of a definition."""
    try:
        with open(path(name)) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise NotDefined(name) from None
    except ValueError as e:
        raise PyctrError(f"definition {path(name)} is damaged: {e}") from None
    values: dict[str, object] = data["run"]
    values["args"] = tuple(values.get("args", ()))  # type: ignore[arg-type]
    values["env"] = tuple(values.get("env", ()))  # type: ignore[arg-type]
    return values


def restart_of(name: str) -> str:
    with open(path(name)) as f:
        return str(json.load(f).get("restart", "no"))


def remove(name: str) -> None:
    found = False
    for target in (path(name), dropin_path(name)):
        try:
            os.unlink(target)
            found = True
        except FileNotFoundError:
            pass
    try:
        os.rmdir(os.path.dirname(dropin_path(name)))
    except OSError:
        pass  # gone, or holds drop-ins of the admin's own
    if not found:
        raise NotDefined(name)


def defined() -> list[str]:
    try:
        entries = sorted(os.listdir(CONFIG_DIR))
    except FileNotFoundError:
        return []
    return [e[: -len(".json")] for e in entries if e.endswith(".json")]
