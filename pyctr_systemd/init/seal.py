"""The interpreter the container's first process runs: sealed, never the host's file.

The launcher execs the payload from inside the container. If it were the host's
python3 at that moment, a payload starting `#!/proc/self/exe` would run that very
file inside the container, and /proc/PID/exe would hand the container a handle
on it: reopened for writing once nothing runs it, the host's interpreter is
the container's (CVE-2019-5736). So the launcher first re-executes itself from a
copy the container cannot write:

- an overlayfs with no upper layer, made with fsopen(2) and mounted nowhere
  (runc's choice since 1.2): read-only for good, since such an overlay cannot
  be remounted writable, costs no copy and no memory, and vanishes with its
  last reference;
- where the kernel lacks the new mount API or overlayfs, a memfd copy whose
  seals forbid any write (runc's original fix), 7 MB per container until exec.
"""

from __future__ import annotations

import fcntl
import os

from pyctr_systemd import syscalls as sc

# overlayfs needs two lower layers to run without an upper one; the second one only
# has to be a directory unrelated to the first: its contents are never looked at.
_SECOND_LAYER = os.path.dirname(os.path.abspath(__file__))
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def interpreter(path: str) -> int:
    """An O_PATH fd of a read-only copy of the interpreter at `path` (its real path)."""
    try:
        return _through_overlay(path)
    except OSError:
        return _memfd_copy(path)


def _escape(directory: str) -> str:
    # overlayfs splits lowerdir at ":" and takes "\" as its escape.
    return directory.replace("\\", "\\\\").replace(":", "\\:")


def _through_overlay(path: str) -> int:
    directory, name = os.path.split(path)
    context = sc.fsopen("overlay")
    try:
        sc.fsconfig_string(context, "lowerdir", f"{_escape(directory)}:{_escape(_SECOND_LAYER)}")
        try:
            sc.fsconfig_string(context, "xino", "off")  # spares dmesg a warning; the copy needs no xino
        except OSError:
            pass
        sc.fsconfig_create(context)
        mount = sc.fsmount(context, sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV)
    finally:
        os.close(context)
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=mount)
    finally:
        os.close(mount)


def _memfd_copy(path: str) -> int:
    copy = os.memfd_create("pyctr-python", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(source).st_size
            while os.sendfile(copy, source, None, size - os.lseek(copy, 0, os.SEEK_CUR)):
                pass
        finally:
            os.close(source)
        fcntl.fcntl(copy, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(copy)
        raise
    return copy
