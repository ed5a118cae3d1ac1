"""Thin ctypes wrappers for the Linux calls the standard library lacks.

Python 3.11 has no unshare, mount or pivot_root; each wrapper is one libc call that
raises OSError with the path involved, so callers can say what was being done.
Stdlib only: this module is imported on the container start path.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWTIME = 0x00000080
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18

MNT_DETACH = 2

PR_CAPBSET_DROP = 24

# glibc has no wrapper for these; syscall numbers per architecture. The new
# mount API and openat2 have one number on every architecture.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "ppc64le": 271, "s390x": 280}
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348}
_SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT, _SYS_OPENAT2 = 430, 431, 432, 437

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str, path: str | None = None) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None
) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(result, f"mount {fstype or source or ''} on {target}", target)


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT[os.uname().machine]
    _check(_libc.syscall(number, _b(new_root), _b(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def drop_bounding_capability(cap: int) -> None:
    _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT_RAISE = 2


def set_capabilities(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) of the three per-thread sets, each a 64-bit mask of capability numbers."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def set_ambient_capabilities(caps: frozenset[int]) -> None:
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    for cap in sorted(caps):
        _check(
            _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), f"raise ambient capability {cap}"
        )


def set_keep_capabilities(keep: bool) -> None:
    """Keep the permitted set across setuid(2) from root to another user."""
    _check(_libc.prctl(PR_SET_KEEPCAPS, int(keep), 0, 0, 0), "keep capabilities")


def set_no_new_privileges() -> None:
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")


class _Rlimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_ulong), ("hard", ctypes.c_ulong)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2); the resource module would do, but costs an import on the start path."""
    limit = _Rlimit(soft, hard)
    _check(_libc.setrlimit(resource, ctypes.byref(limit)), f"setrlimit {resource}")


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sh14x"  # struct ifreq: name, then ifr_flags in the union


def set_loopback_up() -> None:
    """ip link set lo up: one ioctl on any socket (netdevice(7))."""
    fd = _libc.socket(2, 2, 0)  # AF_INET, SOCK_DGRAM; the socket module costs ~7 ms to import
    _check(fd, "socket")
    try:
        ifreq = fcntl.ioctl(fd, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0))
        flags = struct.unpack(_IFREQ, ifreq)[1]
        fcntl.ioctl(fd, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
    finally:
        os.close(fd)


PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def set_dumpable(dumpable: bool) -> None:
    """A non-dumpable process's /proc files are root's, and only CAP_SYS_PTRACE reaches them."""
    _check(_libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "set dumpable")


def set_child_subreaper() -> None:
    """Orphaned descendants come to us, not to init: a process forked by a child that exits."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "set child subreaper")


KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str) -> None:
    """A new session keyring of that name for this process and its children (keyrings(7))."""
    number = _SYS_KEYCTL[os.uname().machine]
    _check(_libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, _b(name)), "join a session keyring")


O_PATH = os.O_PATH
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_IN_ROOT = 2, 4, 16


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2): `path` resolved under `dirfd` as `resolve` says (RESOLVE_IN_ROOT: as if
    dirfd were /, so no symlink or .. leads out). Raises OSError(ENOSYS) on kernels before 5.6."""
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, 0, resolve)
    fd = _libc.syscall(_SYS_OPENAT2, dirfd, _b(path), how, len(how))
    _check(fd, f"open {path}", path)
    return int(fd)


FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC = 1, 1
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 1, 2, 4


def fsopen(fstype: str) -> int:
    fd = _libc.syscall(_SYS_FSOPEN, _b(fstype), FSOPEN_CLOEXEC)
    _check(fd, f"fsopen {fstype}")
    return int(fd)


def fsconfig_string(fd: int, key: str, value: str) -> None:
    _check(_libc.syscall(_SYS_FSCONFIG, fd, FSCONFIG_SET_STRING, _b(key), _b(value), 0), f"fsconfig {key}")


def fsconfig_create(fd: int) -> None:
    _check(_libc.syscall(_SYS_FSCONFIG, fd, FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig create")


def fsmount(fd: int, attributes: int) -> int:
    """A mount of the configured filesystem attached nowhere: it lives as long as its fd."""
    mfd = _libc.syscall(_SYS_FSMOUNT, fd, FSMOUNT_CLOEXEC, attributes)
    _check(mfd, "fsmount")
    return int(mfd)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


PROC_SUPER_MAGIC = 0x9FA0
_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]


def filesystem_type(fd: int) -> int:
    """The f_type of fstatfs(2): which filesystem an open file is on."""
    buf = _Statfs()
    _check(_libc.fstatfs(fd, ctypes.byref(buf)), "fstatfs")
    return int(buf.f_type)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


SECCOMP_SET_MODE_FILTER = 1
_SOCK_FILTER_SIZE = 8  # struct sock_filter: code, jt, jf, k


def load_seccomp_filter(program: bytes, flags: int) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER): a compiled BPF program, from now on and across exec."""
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // _SOCK_FILTER_SIZE, ctypes.cast(code, ctypes.c_void_p))
    number = _SYS_SECCOMP[os.uname().machine]
    _check(_libc.syscall(number, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog)), "seccomp")
