"""Who the payload is: user and groups, capabilities, no_new_privs, seccomp, keyring.

The order is the kernel's and runc's: a session keyring of its own first; a
seccomp filter before the capabilities go when no_new_privs is not asked for
(loading one then needs CAP_SYS_ADMIN), else as the last step before exec; the
bounding set, then the ids with the permitted set kept across setuid, then
the effective, permitted, inheritable and ambient sets. The filter comes
compiled (init.bpf): libseccomp does that in pyctr's own process, meanwhile.
"""

from __future__ import annotations

import errno
import os
from stat import S_ISREG

from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import LaunchError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.init.launch import LaunchSpec


def last_capability() -> int:
    """The highest capability this kernel knows. A host fact, read before the container
    exists: inside, a mount over /proc/sys could make it say anything."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def not_dumpable() -> None:
    """Until the payload's exec resets it: /proc/PID of this process is root's and closed to
    ptrace, so nothing in the container can read its memory, fds, root or exe."""
    sc.set_dumpable(False)


def join_keyring(name: str) -> None:
    """A session keyring of the container's own: no key of the caller's, or of another
    container's, is in reach. A kernel without keyrings has nothing to share."""
    try:
        sc.join_session_keyring(name)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise


# A compiled seccomp program and the seccomp(2) flags to load it with (init.bpf).
Program = tuple[bytes, int]


PASSWD_LIMIT = 4 << 20  # an image's /etc/passwd is read no further
AT_FDCWD = -100


def home(uid: int) -> str:
    """The uid's home in the container's /etc/passwd, "/" if none: runc's HOME when the
    process's env has none. Run inside the container's root, before the ids change."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
    try:
        # Not through a magic link (/proc/PID/root/...): a file of the image's own.
        fd = sc.openat2(AT_FDCWD, "/etc/passwd", flags, sc.RESOLVE_NO_MAGICLINKS)
    except OSError:
        return "/"
    try:
        if not S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device would block or never end
            return "/"
        return home_in(os.read(fd, PASSWD_LIMIT), uid) or "/"
    finally:
        os.close(fd)


def home_in(passwd: bytes, uid: int) -> str:
    """The home field of the first entry with this uid, "" if there is none."""
    for line in passwd.split(b"\n"):
        fields = line.split(b":")
        if len(fields) >= 6 and fields[2] == str(uid).encode():
            return fields[5].decode(errors="surrogateescape")
    return ""


def take(spec: LaunchSpec, last_cap: int, seccomp: Program | None) -> None:
    """Everything but a no_new_privs filter, which finish() loads after the fifo and the hooks."""
    if spec.apparmor_profile:
        _apparmor_on_exec(spec.apparmor_profile)
    if seccomp is not None and not spec.no_new_privileges:
        _load(seccomp)
    caps = spec.capabilities
    for cap in range(last_cap + 1):
        if cap not in caps.bounding:
            sc.drop_bounding_capability(cap)
    sc.set_keep_capabilities(True)
    os.setgroups(list(spec.additional_gids))
    os.setresgid(spec.gid, spec.gid, spec.gid)
    os.setresuid(spec.uid, spec.uid, spec.uid)
    sc.set_keep_capabilities(False)

    def mask(s: frozenset[int]) -> int:
        return sum(1 << c for c in s if c <= last_cap)

    try:
        sc.set_capabilities(mask(caps.effective), mask(caps.permitted), mask(caps.inheritable))
    except OSError as e:
        raise LaunchError(
            "container setup failed: cannot apply process.capabilities "
            f"(effective must be within permitted, inheritable within bounding): {e.strerror}"
        ) from None
    # The kernel takes an ambient capability only if it is permitted and
    # inheritable; runc's own default spec lists ambient ones that are not.
    sc.set_ambient_capabilities(caps.ambient & caps.permitted & caps.inheritable)
    if spec.umask is not None:
        os.umask(spec.umask)


def _apparmor_on_exec(profile: str) -> None:
    """The profile the payload's exec enters, as runc asks for it (the container's /proc)."""
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):  # the second before 5.8
        try:
            with open(path, "w") as f:
                f.write(f"exec {profile}")
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise LaunchError(
                f"container setup failed: cannot apply AppArmor profile {profile!r}: {e.strerror}"
            ) from None
    raise LaunchError(f"container setup failed: cannot apply AppArmor profile {profile!r}: no such attribute")


def finish(spec: LaunchSpec, seccomp: Program | None) -> None:
    if spec.no_new_privileges:
        sc.set_no_new_privileges()
        if seccomp is not None:
            _load(seccomp)


def _load(seccomp: Program) -> None:
    # What libseccomp's binding cannot do: load a program compiled elsewhere.
    program, flags = seccomp
    try:
        sc.load_seccomp_filter(program, flags)
    except OSError as e:
        raise LaunchError(f"container setup failed: cannot load the seccomp filter: {e.strerror}") from None
