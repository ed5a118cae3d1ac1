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

A definition can also name an OCI bundle (`pyctr define NAME BUNDLE`): the
bundle stays where it is, as with runc, its config.json is read at every
start, and the drop-in carries its linux.resources. config.json is the format
podman and `runc spec` already write; re-defining re-reads its limits.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from pyctr_systemd import names, resources, spec, templates, unit
from pyctr_systemd.errors import InvalidArgument, PyctrError, RootfsError
from pyctr_systemd.limits import UINT64_MAX, Property, cpu_list, cpu_quota
from pyctr_systemd.run_config import OPTIONS

CONFIG_DIR = "/etc/pyctr"
UNIT_DIR = "/etc/systemd/system"
RUNTIME_DIR = "/run/systemd/system.control"
RESTART_POLICIES = ("no", "on-failure", "always")


class NotDefined(PyctrError):
    def __init__(self, name: str) -> None:
        super().__init__(f"container {name} is not defined (pyctr define {name} ...)")


def path(name: str) -> str:
    return os.path.join(CONFIG_DIR, f"{names.validate(name)}.json")


def dropin_path(name: str) -> str:
    return os.path.join(UNIT_DIR, f"{names.defined_unit(names.validate(name))}.d", "50-pyctr.conf")


Setting = tuple[str, str]
_NAME = re.compile(r"[A-Z][A-Za-z0-9]*\Z")


def unit_settings(props: Sequence[Property]) -> list[Setting]:
    """Unit-file settings for D-Bus properties. Names and text come from
    config.json too (annotations): a name is letters only, and text can hold
    no line break (a setting of its own) and no % (a specifier)."""
    settings = []
    for name, sig, value in props:
        if not _NAME.match(name):
            raise InvalidArgument(f"unit property {name!r}: not the name of a unit setting")
        if sig == "s" and (not str(value).isprintable() or "%" in str(value)):
            raise InvalidArgument(f"unit property {name}: {value!r} cannot go into a drop-in")
        settings += _settings(name, value)
    return settings


def _settings(name: str, value: object) -> list[Setting]:
    if name == "CPUQuotaPerSecUSec":
        per_sec = int(value)  # type: ignore[call-overload]
        return [("CPUQuota", "" if per_sec == UINT64_MAX else f"{cpu_quota(per_sec) // 10_000}%")]
    if name == "DeviceAllow":
        return [(name, f"{path} {access}") for path, access in value]  # type: ignore[attr-defined]
    if name in ("AllowedCPUs", "AllowedMemoryNodes") and isinstance(value, bytes):
        return [(name, cpu_list(value))]
    if isinstance(value, bool):
        return [(name, "yes" if value else "no")]
    if value == UINT64_MAX:
        return [(name, "infinity")]
    if name.endswith("USec") and isinstance(value, int):
        return [(name.removesuffix("USec") + "Sec", f"{value}us")]
    if isinstance(value, (str, int)):
        return [(name, str(value))]
    raise InvalidArgument(f"unit property {name}: only plain values can go into a drop-in")


def merged(base: Sequence[Setting], changes: Sequence[Setting]) -> list[Setting]:
    """`base` with every setting named in `changes` replaced by those of `changes`."""
    changed = {key for key, _ in changes}
    return [s for s in base if s[0] not in changed] + list(changes)


def render_dropin(name: str, restart: str, settings: Sequence[Setting]) -> str:
    if restart not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid --restart {restart!r}: use {', '.join(RESTART_POLICIES)}")
    return templates.render("dropin.conf.j2", container=name, restart=restart, settings=settings)


def save(name: str, definition: dict[str, object], dropin: str) -> None:
    """Write the definition and its drop-in (replacing an earlier one).

    definition: {"restart": ..., "run": the run option values} or
    {"restart": ..., "bundle": path, "machine": bool, "overrides": unit
    settings made by `pyctr update`}."""
    os.makedirs(CONFIG_DIR, 0o755, exist_ok=True)
    _write(path(name), json.dumps({**definition, "name": name}, indent=2) + "\n")
    os.makedirs(os.path.dirname(dropin_path(name)), 0o755, exist_ok=True)
    _write(dropin_path(name), dropin)


def save_and_apply(name: str, definition: dict[str, object], dropin: str, apply: Callable[[], None]) -> None:
    """save(), then apply() (systemd's reload). If either fails, what was there before (an
    earlier definition, or nothing) is put back and applied: a failed define leaves nothing."""
    before = {target: _contents(target) for target in (path(name), dropin_path(name))}
    try:
        save(name, definition, dropin)
        apply()
    except BaseException as e:
        for target, text in before.items():
            _put_back(target, text)
        try:
            apply()
        except PyctrError:
            pass  # the first failure is the one to report
        if isinstance(e, OSError):
            raise PyctrError(f"cannot define {name}: {e.filename}: {e.strerror}") from None
        raise


def _contents(target: str) -> str | None:
    try:
        with open(target) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _put_back(target: str, text: str | None) -> None:
    for leftover in [f"{target}.tmp"] if text is not None else [f"{target}.tmp", target]:
        try:
            os.unlink(leftover)
        except FileNotFoundError:
            pass
    if text is not None:
        _write(target, text)
    else:
        try:
            os.rmdir(os.path.dirname(target))  # the drop-in's directory, if save made it
        except OSError:
            pass  # not empty, or /etc/pyctr with other definitions


def forget_runtime_changes(name: str) -> None:
    """Drop what `pyctr update` set on the running service (SetUnitProperties
    keeps it in systemd's runtime drop-ins): the definition is the truth again."""
    import shutil

    shutil.rmtree(os.path.join(RUNTIME_DIR, f"{names.defined_unit(name)}.d"), ignore_errors=True)


def _write(target: str, text: str) -> None:
    tmp = f"{target}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
    except OSError as e:  # a full disk is seen at the write or the close, which name no file
        raise OSError(e.errno, e.strerror, tmp) from None
    os.rename(tmp, target)


def load(name: str) -> dict[str, object]:
    """A stored definition, as save() wrote it, or as an admin edited it: checked."""
    try:
        with open(path(name)) as f:
            data = json.load(f)
        _check(data)
    except FileNotFoundError:
        raise NotDefined(name) from None
    except (ValueError, RecursionError) as e:
        raise PyctrError(f"definition {path(name)} is damaged: {e}") from None
    return data  # type: ignore[no-any-return]


def _check(data: object) -> None:
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if data.get("restart") not in RESTART_POLICIES:
        raise ValueError(f"restart: {data.get('restart')!r} is not one of {', '.join(RESTART_POLICIES)}")
    if "bundle" in data:
        if not isinstance(data["bundle"], str) or not isinstance(data.get("overrides", []), list):
            raise ValueError("bundle: not a path, or overrides not a list")
    else:
        run_values(data)


def run_values(definition: dict[str, object]) -> dict[str, Any]:
    """The `pyctr run` option values of a definition made from them, each of the type its
    option takes (ValueError if not)."""
    stored = definition.get("run")
    if not isinstance(stored, dict):
        raise ValueError("run: not an object")
    options = {o.dest: o for o in OPTIONS}
    values: dict[str, Any] = {o.dest: o.default for o in OPTIONS}  # an option left out: its default
    for key, value in stored.items():
        option = options.get(key)
        if key == "command_only" or (option is not None and option.flag):
            fits = type(value) is bool
        elif key == "args" or (option is not None and option.multiple):
            fits = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if fits else value
        elif option is not None:
            kinds = (option.type, int) if option.type is float else (option.type,)
            fits = (value is None and option.default is None) or type(value) in kinds
        else:
            raise ValueError(f"run.{key}: not an option of pyctr run")
        if not fits:
            raise ValueError(f"run.{key}: {value!r} is not what {option.names[-1] if option else key} takes")
        values[key] = value
    if "args" not in stored or "command_only" not in stored:
        raise ValueError("run: no args or command_only")
    return values


def is_bundle(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "config.json"))


def bundle_config(bundle: str) -> tuple[spec.Config, list[str]]:
    """A bundle's config.json, checked for what a service can run, and warnings."""
    config = spec.load(bundle)
    spec.refuse_host_sysctls(config)
    if not os.path.isdir(config.root_path):
        raise RootfsError(f"rootfs {config.root_path} does not exist or is not a directory")
    hooks = sorted(kind for kind, found in config.hooks.items() if found)
    if hooks:
        raise InvalidArgument(
            f"config.json: hooks.{hooks[0]}: a defined container runs no hooks "
            "(use pyctr create and start for this bundle)"
        )
    warnings = list(config.warnings)
    if config.process.terminal:
        warnings.append("config.json: process.terminal ignored: a service's output goes to the journal")
    return config, warnings


def bundle_properties(config: spec.Config, unified: bool) -> tuple[list[Property], list[str]]:
    """The unit properties of a bundle definition: its linux.resources and
    org.systemd.property.* annotations."""
    props, warnings = resources.properties(config.resources, unified)
    return props + unit.annotation_properties(config.annotations), warnings


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
