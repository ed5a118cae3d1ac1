"""Container names and the systemd unit names made from them."""

from __future__ import annotations

import os

from pyctr_systemd.errors import InvalidArgument

MAX_LENGTH = 128
HOSTNAME_MAX = 64  # HOST_NAME_MAX
SLICE = "pyctr.slice"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ALLOWED = _ALNUM | frozenset("_.-")


def validate(name: str, what: str = "container name") -> str:
    """Docker's rule, [a-zA-Z0-9][a-zA-Z0-9_.-]*; such names are also safe in unit names.

    Checked without `re`: importing it costs ~6 ms on every container start.
    """
    if not name or name[0] not in _ALNUM or not _ALLOWED.issuperset(name) or len(name) > MAX_LENGTH:
        raise InvalidArgument(
            f"invalid {what} {name!r}: use letters, digits, '_', '.' and '-', "
            f"starting with a letter or digit, at most {MAX_LENGTH} characters"
        )
    return name


def validate_id(container_id: str) -> str:
    """An OCI container id: the same rule, so the id can name the unit and a state directory."""
    return validate(container_id, "container id")


def generate() -> str:
    """A fresh id, like podman's short ids."""
    return os.urandom(6).hex()


def scope_unit(name: str) -> str:
    """`pyctr run`'s unit (and an OCI container's, named by its id)."""
    return f"pyctr-{name}.scope"


def detached_unit(name: str) -> str:
    """`pyctr run -d`'s unit."""
    return f"pyctr-{name}.service"


def defined_unit(name: str) -> str:
    """A defined container's unit, an instance of pyctr@.service."""
    return f"pyctr@{name}.service"


def other_units(unit: str, name: str) -> list[str]:
    """The units other than `unit` that a container called `name` could be running
    as: a name stands for one container, whichever way it was started."""
    return [u for u in (scope_unit(name), detached_unit(name), defined_unit(name)) if u != unit]


def keyring(name: str) -> str:
    """A container's session keyring, named as runc names it."""
    return f"_ses.{name}"


def default_hostname(name: str) -> str:
    return name[:HOSTNAME_MAX]
