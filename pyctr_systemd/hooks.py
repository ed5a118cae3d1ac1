"""OCI hooks: programs run at points of a container's life, its state JSON on stdin.

Where each kind runs (runtime-spec config.md, "POSIX-platform Hooks"):
prestart and createRuntime in pyctr's own namespaces during create, once the
container's namespaces and unit exist; createContainer in the container's
namespaces before pivot_root; startContainer in the container just before the
payload's exec; poststart after start; poststop when the container is deleted.
"""

from __future__ import annotations

from pyctr_systemd.errors import PyctrError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class HookError(PyctrError):
    pass


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(
        self, path: str, args: tuple[str, ...] = (), env: tuple[str, ...] = (), timeout: int | None = None
    ) -> None:
        self.path, self.args, self.env, self.timeout = path, args, env, timeout

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {"path": self.path, "args": list(self.args), "env": list(self.env)}
        if self.timeout is not None:
            data["timeout"] = self.timeout
        return data


def from_json(data: dict[str, object]) -> Hook:
    """A hook as stored in pyctr's state (already validated by pyctr_systemd.spec)."""
    timeout = data.get("timeout")
    return Hook(
        str(data["path"]),
        tuple(str(a) for a in data.get("args", ()) or ()),  # type: ignore[attr-defined]
        tuple(str(e) for e in data.get("env", ()) or ()),  # type: ignore[attr-defined]
        int(timeout) if isinstance(timeout, int) else None,
    )


def run(hook: Hook, state: dict[str, object]) -> None:
    """Run one hook to its end; raise HookError if it fails or runs out of time."""
    # Not at the top: ~3 ms on every OCI command, most have no hooks, and the
    # container's first process holds Hook objects.
    import json
    import subprocess

    env = dict(e.split("=", 1) for e in hook.env if "=" in e)
    try:
        done = subprocess.run(
            list(hook.args) or [hook.path],
            executable=hook.path,
            input=json.dumps(state).encode(),
            env=env,
            capture_output=True,
            timeout=hook.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HookError(f"hook {hook.path} did not finish within its timeout of {hook.timeout}s") from None
    except OSError as e:
        raise HookError(f"cannot run hook {hook.path}: {e.strerror}") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        tail = f": {said[-1]}" if said else ""
        raise HookError(f"hook {hook.path} failed with exit status {done.returncode}{tail}")


def run_all(hooks: tuple[Hook, ...], state: dict[str, object]) -> None:
    for hook in hooks:
        run(hook, state)
