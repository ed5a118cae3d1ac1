"""OCI bundles: `pyctr spec` writes a bundle's config.json with runc's defaults.

The config comes from templates/config.json.j2, so it is JSON-equal to what
`runc spec` (or `runc spec --rootless`) writes, but for linux.seccomp: pyctr's
default profile, as close to docker's and podman's as a spec can say. Like
runc, an existing config.json is never overwritten.
"""

from __future__ import annotations

import os

from pyctr_systemd.errors import InvalidArgument

CONFIG = "config.json"
EXISTS = f"File {CONFIG} exists. Remove it first"


# The capabilities runc's spec gives: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
SPEC_CAPABILITIES = frozenset({29, 5, 10})


def render_spec(rootless: bool, host_uid: int = 0, host_gid: int = 0, seccomp: bool = True) -> str:
    """The config.json text: runc's, plus pyctr's default seccomp profile (as podman and
    docker always send one); with rootless, host_uid and host_gid are mapped to root."""
    import json

    from pyctr_systemd import seccomp_profile, templates

    profile = ""
    if seccomp:
        found = seccomp_profile.default_profile(SPEC_CAPABILITIES, os.uname().machine)
        profile = json.dumps(found, indent="\t").replace("\n", "\n\t\t")
    return templates.render(
        "config.json.j2", rootless=rootless, host_uid=host_uid, host_gid=host_gid, seccomp=profile
    )


def write_spec(bundle: str, rootless: bool) -> str:
    """Write BUNDLE/config.json (rootless: mapping the caller's effective ids) and return its path."""
    if not os.path.isdir(bundle):
        raise InvalidArgument(f"bundle directory {bundle} does not exist or is not a directory")
    path = os.path.join(bundle, CONFIG)
    # lexists: a dangling symlink counts too (runc would write through it).
    if os.path.lexists(path):
        raise InvalidArgument(EXISTS)
    text = render_spec(rootless, os.geteuid(), os.getegid())

    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{CONFIG}.", dir=bundle)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as runc's os.WriteFile(path, data, 0666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # A link never replaces a file: a config.json made meanwhile is still refused.
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise InvalidArgument(EXISTS) from None
        except OSError:  # a filesystem without hard links
            if os.path.lexists(path):
                raise InvalidArgument(EXISTS) from None
            os.rename(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path
