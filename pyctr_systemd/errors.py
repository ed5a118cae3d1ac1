"""pyctr's own errors: each is one line a person can act on.

Only the CLI turns them into output ("pyctr: <message>") and an exit status.
125 follows podman and docker: the runtime itself failed, not the payload.
"""

from __future__ import annotations


class PyctrError(Exception):
    exit_code = 125


class InvalidArgument(PyctrError):
    """Bad input from the user: a name, a size, an option combination."""


class NotRoot(PyctrError):
    pass


class ContainerExists(PyctrError):
    pass


class SystemdError(PyctrError):
    """The system bus or systemd could not do what was asked."""


class RootfsError(PyctrError):
    pass


class LaunchError(PyctrError):
    """The container could not be set up or its payload not executed."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code
