"""OCI bundles: `pyctr spec` writes a bundle's config.json with runc's defaults.

The config comes from templates/config.json.j2, so it is JSON-equal to what
`runc spec` (or `runc spec --rootless`) writes. Like runc, an existing
config.json is never overwritten.
"""

from __future__ import annotations

import os

from pyctr_systemd.errors import InvalidArgument

CONFIG = "config.json"
EXISTS = f"File {CONFIG} exists. Remove it first"


def render_spec(rootless: bool, host_uid: int = 0, host_gid: int = 0) -> str:
    """The config.json text; with rootless, host_uid and host_gid are mapped to root in the container."""
    from pyctr_systemd import templates

    return templates.render("config.json.j2", rootless=rootless, host_uid=host_uid, host_gid=host_gid)


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
