"""Seccomp filters: linux.seccomp and docker-style profiles read, checked, and pyctr's default.

Pure: a decoded JSON object in, a SyscallFilter out, or an InvalidArgument
naming the JSON path and the problem ("config.json: linux.seccomp.syscalls[3].action:
unknown action 'X'"). The host's facts a profile may depend on (capabilities,
`uname -m`, kernel release) come in as arguments, so every outcome is testable
on any machine. Syscall names are not resolved here: the loader skips the ones
libseccomp does not know, as runc does, so a profile written for a newer kernel
still loads. Stdlib only, and no re, json, typing, enum or dataclasses: the
default filter is built on the container start path.
"""

from __future__ import annotations

from pyctr_systemd.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~9 ms to import; mypy reads this as True
if TYPE_CHECKING:
    from typing import TypeAlias

    Arg: TypeAlias = tuple[int, int, int, str]  # (index, value, valueTwo, op)

ACTIONS = frozenset(
    "SCMP_ACT_KILL SCMP_ACT_KILL_PROCESS SCMP_ACT_KILL_THREAD SCMP_ACT_TRAP SCMP_ACT_ERRNO "
    "SCMP_ACT_TRACE SCMP_ACT_ALLOW SCMP_ACT_LOG".split()
)
# The actions whose errnoRet means something: the errno returned, or the tracer's message.
ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
OPERATORS = frozenset(
    "SCMP_CMP_NE SCMP_CMP_LT SCMP_CMP_LE SCMP_CMP_EQ SCMP_CMP_GE SCMP_CMP_GT SCMP_CMP_MASKED_EQ".split()
)
FLAGS = frozenset(
    "SECCOMP_FILTER_FLAG_TSYNC SECCOMP_FILTER_FLAG_LOG SECCOMP_FILTER_FLAG_SPEC_ALLOW "
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".split()
)
# Every architecture libseccomp has a name for, as runc accepts them.
ARCHITECTURES = frozenset(
    f"SCMP_ARCH_{name}"
    for name in (
        "X86 X86_64 X32 ARM AARCH64 LOONGARCH64 M68K MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 "
        "MIPSEL64N32 PPC PPC64 PPC64LE S390 S390X PARISC PARISC64 RISCV64 SH SHEB"
    ).split()
)
# `uname -m` -> (Go's name for it, which docker profiles use in "arches"; the
# architectures its processes can run as, native first). mips64 is taken as big
# endian: uname does not tell.
_MACHINES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("amd64", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "i686": ("386", ("SCMP_ARCH_X86",)),
    "aarch64": ("arm64", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "armv7l": ("arm", ("SCMP_ARCH_ARM",)),
    "ppc64le": ("ppc64le", ("SCMP_ARCH_PPC64LE",)),
    "ppc64": ("ppc64", ("SCMP_ARCH_PPC64", "SCMP_ARCH_PPC")),
    "ppc": ("ppc", ("SCMP_ARCH_PPC",)),
    "s390x": ("s390x", ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
    "s390": ("s390", ("SCMP_ARCH_S390",)),
    "mips64": ("mips64", ("SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPS")),
    "mips": ("mips", ("SCMP_ARCH_MIPS",)),
    "riscv64": ("riscv64", ("SCMP_ARCH_RISCV64",)),
    "loongarch64": ("loong64", ("SCMP_ARCH_LOONGARCH64",)),
    "parisc64": ("parisc64", ("SCMP_ARCH_PARISC64", "SCMP_ARCH_PARISC")),
    "parisc": ("parisc", ("SCMP_ARCH_PARISC",)),
}
_MACHINES.update({m: _MACHINES["i686"] for m in ("i386", "i486", "i586")})
_MACHINES.update({m: _MACHINES["armv7l"] for m in ("armv6l", "armv8l", "arm")})
_MACHINES["arm64"] = _MACHINES["aarch64"]
# pyctr_systemd.spec's list (capabilities(7) order), repeated: spec imports this
# module, and importing spec here would put json on the start path.
_CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
    "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
    "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
).split()
_CAPABILITY_NUMBERS = {f"CAP_{name}": n for n, name in enumerate(_CAPABILITIES)}
_NO_NOTIFY = "pyctr does not support seccomp user notification"
_UINT64_MAX = 2**64 - 1


# --- the model -------------------------------------------------------------------------


class _Model:
    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and isinstance(other, _Model) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"


class SyscallRule(_Model):
    """What happens to a call of `names` whose arguments pass every one of `args`."""

    __slots__ = ("names", "action", "errno", "args")

    def __init__(
        self, names: tuple[str, ...], action: str, errno: int | None = None, args: tuple[Arg, ...] = ()
    ) -> None:
        self.names, self.action, self.errno, self.args = names, action, errno, args

    def to_oci(self) -> dict[str, object]:
        rule: dict[str, object] = {"names": list(self.names), "action": self.action}
        if self.errno is not None:
            rule["errnoRet"] = self.errno
        if self.args:
            rule["args"] = [
                {"index": index, "value": value, "valueTwo": two, "op": op}
                for index, value, two, op in self.args
            ]
        return rule


class SyscallFilter(_Model):
    """A checked filter; `architectures` empty means the native one only (runc's reading)."""

    __slots__ = ("default_action", "default_errno", "architectures", "flags", "rules")

    def __init__(
        self,
        default_action: str,
        default_errno: int | None = None,
        architectures: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        rules: tuple[SyscallRule, ...] = (),
    ) -> None:
        self.default_action, self.default_errno = default_action, default_errno
        self.architectures, self.flags, self.rules = architectures, flags, rules

    def to_oci(self) -> dict[str, object]:
        """linux.seccomp as the runtime-spec writes it; `parse` reads it back to an equal filter."""
        data: dict[str, object] = {"defaultAction": self.default_action}
        if self.default_errno is not None:
            data["defaultErrnoRet"] = self.default_errno
        data["architectures"] = list(self.architectures)
        if self.flags:
            data["flags"] = list(self.flags)
        data["syscalls"] = [r.to_oci() for r in self.rules]
        return data


# --- typed access; errors carry the path below the seccomp object ----------------------


class _Bad(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where, self.problem = where, problem


def _obj(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Bad(where, "must be an object")
    return value


def _list(value: object, where: str) -> list[object]:
    """A list; null counts as empty, as Go writes a nil slice."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(where, "must be a list")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(where, "must be a string")
    return value


def _int(value: object, where: str, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad(where, "must be an integer")
    if not 0 <= value <= high:
        raise _Bad(where, f"must be 0 to {high}")
    return value


def _strings(value: object, where: str) -> list[str]:
    items = _list(value, where)
    for i, item in enumerate(items):
        _str(item, f"{where}[{i}]")
    return items  # type: ignore[return-value]  # each item checked just above


def _join(path: str, where: str) -> str:
    return f"{path}.{where}" if path and where else path or where


def _version(text: str) -> tuple[int, ...]:
    """The leading numbers of a kernel release: "6.1.0-18-amd64" -> (6, 1, 0)."""
    numbers = []
    for part in text.split("."):
        digits = len(part) - len(part.lstrip("0123456789"))
        if not digits:
            break
        numbers.append(int(part[:digits]))
        if digits < len(part):
            break
    return tuple(numbers)


# --- the host a profile is read for ----------------------------------------------------


class _Host:
    __slots__ = ("capabilities", "names", "architectures", "kernel")

    def __init__(self, capabilities: frozenset[int], machine: str, kernel: str) -> None:
        go_name, self.architectures = _MACHINES.get(machine, (machine, ()))
        self.capabilities = capabilities
        self.names = frozenset((machine, go_name))  # docker writes Go's names; accept uname's too
        self.kernel = _version(kernel)


def architectures(machine: str) -> tuple[str, ...]:
    """The libseccomp architectures of a `uname -m`, native first; () if pyctr does not know it."""
    return _MACHINES.get(machine, ("", ()))[1]


# --- the parts -------------------------------------------------------------------------


def _action(value: object, where: str) -> str:
    if value is None:
        raise _Bad(where, "is required")
    action = _str(value, where)
    if action == "SCMP_ACT_NOTIFY":
        raise _Bad(where, f"{_NO_NOTIFY} (SCMP_ACT_NOTIFY)")
    if action not in ACTIONS:
        raise _Bad(where, f"unknown action {action!r}")
    return action


def _errno(value: object, where: str, action: str) -> int | None:
    if value is None:
        return None
    if action not in ERRNO_ACTIONS:
        raise _Bad(where, f"only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {action}")
    return _int(value, where, 4095)


def _architecture(value: object, where: str) -> str:
    arch = _str(value, where)
    if arch not in ARCHITECTURES:
        raise _Bad(where, f"unknown architecture {arch!r}")
    return arch


def _arch_map(value: object, host: _Host) -> tuple[str, ...]:
    """docker's archMap: the host's entry, by its architecture, else by a sub-architecture."""
    entries = []
    for i, item in enumerate(_list(value, "archMap")):
        entry = _obj(item, f"archMap[{i}]")
        main = _architecture(entry.get("architecture"), f"archMap[{i}].architecture")
        where = f"archMap[{i}].subArchitectures"
        subs = [
            _architecture(a, f"{where}[{j}]")
            for j, a in enumerate(_list(entry.get("subArchitectures"), where))
        ]
        entries.append([main, *subs])
    native = host.architectures[0] if host.architectures else None
    by_main = [e for e in entries if e[0] == native]
    by_sub = [e for e in entries if native in e[1:]]
    # The first entry wins, as in docker; repeats go: libseccomp refuses an architecture twice.
    return tuple(dict.fromkeys((by_main or by_sub or [[]])[0]))


def _architectures(top: dict[str, object], host: _Host) -> tuple[str, ...]:
    listed = _list(top.get("architectures"), "architectures")
    if top.get("archMap"):
        if listed:
            raise _Bad("archMap", "cannot be given together with architectures")
        return _arch_map(top["archMap"], host)
    # Repeats are dropped: libseccomp refuses to add an architecture twice.
    return tuple(dict.fromkeys(_architecture(a, f"architectures[{i}]") for i, a in enumerate(listed)))


def _flags(value: object) -> tuple[str, ...]:
    flags = _strings(value, "flags")
    for i, flag in enumerate(flags):
        if flag not in FLAGS:
            raise _Bad(f"flags[{i}]", f"unknown or unsupported flag {flag!r}")
    return tuple(dict.fromkeys(flags))


def _names(rule: dict[str, object], where: str) -> tuple[str, ...]:
    name, names = rule.get("name"), rule.get("names")
    if name not in (None, ""):  # docker's legacy singular form
        if names is not None:
            raise _Bad(f"{where}.name", "give name or names, not both")
        names = [name]
        where = f"{where}.name"
    elif names is None:
        raise _Bad(f"{where}.names", "is required")
    else:
        where = f"{where}.names"
    items = _list(names, where)
    if not items:
        raise _Bad(where, "must name at least one syscall")
    if not all(type(n) is str and n for n in items):
        bad = next(i for i, n in enumerate(items) if type(n) is not str or not n)
        raise _Bad(where if name not in (None, "") else f"{where}[{bad}]", "must be a non-empty string")
    return tuple(items)  # type: ignore[arg-type]  # all strings, checked above


def _arg(value: object, where: str) -> Arg:
    arg = _obj(value, where)
    for key in ("index", "value", "op"):
        if arg.get(key) is None:
            raise _Bad(f"{where}.{key}", "is required")
    op = _str(arg["op"], f"{where}.op")
    if op not in OPERATORS:
        raise _Bad(f"{where}.op", f"unknown operator {op!r}")
    two = arg.get("valueTwo")
    return (
        _int(arg["index"], f"{where}.index", 5),
        _int(arg["value"], f"{where}.value", _UINT64_MAX),
        _int(0 if two is None else two, f"{where}.valueTwo", _UINT64_MAX),
        op,
    )


def _condition(value: object, where: str, host: _Host) -> tuple[list[bool], bool | None, bool | None]:
    """docker's includes/excludes: (each cap held?, host in arches?, kernel >= minKernel?), None if unset.

    A capability pyctr does not know counts as not held, as an unknown one in process.capabilities does.
    """
    cond = _obj(value, where)
    caps = _strings(cond.get("caps"), f"{where}.caps")
    held = [_CAPABILITY_NUMBERS.get(c, -1) in host.capabilities for c in caps]
    arches = _strings(cond.get("arches"), f"{where}.arches")
    listed = bool(host.names.intersection(arches)) if arches else None
    minimum = cond.get("minKernel")
    if minimum in (None, ""):
        return held, listed, None
    text = _str(minimum, f"{where}.minKernel")
    parts = text.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise _Bad(f"{where}.minKernel", f"must be a kernel version like 4.8, not {text!r}")
    return held, listed, host.kernel >= tuple(int(p) for p in parts)


def _wanted(rule: dict[str, object], where: str, host: _Host) -> bool:
    """Whether a docker-style entry applies here: all includes hold and no exclude does."""
    wanted = True
    if rule.get("includes") is not None:
        caps, arch, kernel = _condition(rule["includes"], f"{where}.includes", host)
        wanted = all(caps) and arch is not False and kernel is not False
    if rule.get("excludes") is not None:
        caps, arch, kernel = _condition(rule["excludes"], f"{where}.excludes", host)
        wanted = wanted and not (any(caps) or arch or kernel)
    return wanted


def _rule(value: object, where: str, host: _Host) -> SyscallRule | None:
    """One entry of syscalls, or None if its includes/excludes leave it out on this host.

    An entry left out is still checked, so a profile's errors do not depend on the host.
    """
    rule = _obj(value, where)
    names = _names(rule, where)
    action = _action(rule.get("action"), f"{where}.action")
    errno = _errno(rule.get("errnoRet"), f"{where}.errnoRet", action)
    args = tuple(
        _arg(a, f"{where}.args[{i}]") for i, a in enumerate(_list(rule.get("args"), f"{where}.args"))
    )
    if not _wanted(rule, where, host):
        return None
    return SyscallRule(names, action, errno, args)


def _filter(value: object, host: _Host) -> SyscallFilter:
    top = _obj(value, "")
    action = _action(top.get("defaultAction"), "defaultAction")
    errno = _errno(top.get("defaultErrnoRet"), "defaultErrnoRet", action)
    if top.get("listenerPath"):
        raise _Bad("listenerPath", _NO_NOTIFY)
    if top.get("listenerMetadata") is not None:
        _str(top["listenerMetadata"], "listenerMetadata")
    arches = _architectures(top, host)
    flags = _flags(top.get("flags"))
    rules = [_rule(r, f"syscalls[{i}]", host) for i, r in enumerate(_list(top.get("syscalls"), "syscalls"))]
    return SyscallFilter(action, errno, arches, flags, tuple(r for r in rules if r is not None))


def parse(
    value: object, source: str, path: str, capabilities: frozenset[int], machine: str, kernel: str
) -> SyscallFilter:
    """A filter from linux.seccomp, or from a docker/podman seccomp profile.

    `source` and `path` name the file and where the object is in it ("config.json",
    "linux.seccomp"; "profile.json", ""). A docker profile's archMap and
    includes/excludes are decided for the host given by `capabilities` (numbers,
    the container's bounding set), `machine` (`uname -m`) and `kernel` (`uname -r`).
    """
    try:
        return _filter(value, _Host(capabilities, machine, kernel))
    except _Bad as e:
        where = _join(path, e.where)
        raise InvalidArgument(
            f"{source}: {where}: {e.problem}" if where else f"{source}: {e.problem}"
        ) from None


# --- pyctr's default profile -------------------------------------------------------------
#
# Deny by default with EPERM, allow what ordinary programs use. The effect is that of
# docker's and podman's default: what a capability would let a process do to the
# host (mounts, namespaces, modules, clock, reboot, kernel tracing) is allowed only
# when the container holds that capability, and what no container should reach
# (keyrings, which are not namespaced; userfaultfd and io_uring, long a source of
# kernel exploits; kexec, swap, pivot_root, the old vm86 and module interfaces) is
# never allowed. The 32-bit names (chown32, fcntl64, _llseek...) are here for the
# compat architectures of a 64-bit host.

_ALLOWED: tuple[tuple[str, str], ...] = (
    (
        "paths",
        "access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat fchmodat2 "
        "chown chown32 fchown fchown32 fchownat lchown lchown32 creat open openat openat2 "
        "link linkat symlink symlinkat unlink unlinkat rename renameat renameat2 "
        "mkdir mkdirat rmdir mknod mknodat readlink readlinkat umask utime utimes utimensat "
        "utimensat_time64 futimesat truncate truncate64 getdents getdents64",
    ),
    (
        "file status",
        "stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 "
        "fstatfs fstatfs64",
    ),
    (
        "extended attributes",
        "getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat "
        "listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr removexattrat",
    ),
    (
        "file descriptors",
        "close close_range dup dup2 dup3 fcntl fcntl64 ioctl flock pipe pipe2 "
        "ftruncate ftruncate64 fallocate fadvise64 fadvise64_64 readahead "
        "fsync fdatasync sync syncfs sync_file_range cachestat",
    ),
    (
        "reads and writes",
        "read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek _llseek "
        "sendfile sendfile64 splice tee vmsplice copy_file_range",
    ),
    # The old AIO interface only; io_uring stays out.
    (
        "asynchronous I/O",
        "io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64",
    ),
    (
        "waiting for events",
        "select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 "
        "epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait "
        "epoll_pwait2 eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch inotify_rm_watch "
        "fanotify_mark",
    ),
    (
        "memory",
        "brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock "
        "munlockall remap_file_pages membarrier memfd_create memfd_secret pkey_alloc pkey_free "
        "pkey_mprotect map_shadow_stack mseal",
    ),
    # clone and clone3 are below: their namespace flags need CAP_SYS_ADMIN.
    (
        "processes",
        "fork vfork execve execveat exit exit_group wait4 waitid waitpid getpid getppid "
        "getpgid setpgid getpgrp getsid setsid prctl getrlimit ugetrlimit setrlimit prlimit64 "
        "getrusage times pidfd_open process_mrelease seccomp landlock_create_ruleset "
        "landlock_add_rule landlock_restrict_self restart_syscall uname sysinfo getrandom",
    ),
    # Tracing is the kernel's to check (ptrace_may_access), as docker allows on 4.8 and later.
    ("tracing", "ptrace"),
    (
        "threads",
        "gettid set_tid_address futex futex_time64 futex_waitv futex_wake futex_wait futex_requeue "
        "set_robust_list get_robust_list rseq get_thread_area set_thread_area",
    ),
    (
        "user and group ids",
        "getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 "
        "getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid "
        "setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid "
        "setfsuid32 setfsgid setfsgid32 setgroups setgroups32 capget capset",
    ),
    (
        "signals",
        "kill tkill tgkill pidfd_send_signal rt_sigaction rt_sigprocmask rt_sigpending "
        "rt_sigqueueinfo rt_tgsigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait "
        "rt_sigtimedwait_time64 sigaltstack sigprocmask sigreturn signalfd signalfd4 pause",
    ),
    # adjtimex and clock_adjtime only read the clock without CAP_SYS_TIME: the kernel checks.
    (
        "time",
        "time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 "
        "clock_nanosleep clock_nanosleep_time64 nanosleep alarm getitimer setitimer timer_create "
        "timer_delete timer_settime timer_settime64 timer_gettime timer_gettime64 timer_getoverrun "
        "timerfd_create timerfd_settime timerfd_settime64 timerfd_gettime timerfd_gettime64 "
        "adjtimex clock_adjtime clock_adjtime64",
    ),
    # Raising priorities is the kernel's to check (CAP_SYS_NICE, RLIMIT_NICE/RTPRIO).
    (
        "scheduling",
        "sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr "
        "sched_getparam sched_setparam sched_getscheduler sched_setscheduler "
        "sched_get_priority_max sched_get_priority_min sched_rr_get_interval "
        "sched_rr_get_interval_time64 getpriority setpriority ioprio_get ioprio_set getcpu",
    ),
    # socket itself is below, without AF_VSOCK.
    (
        "network",
        "socketpair bind connect listen accept accept4 getsockname getpeername getsockopt "
        "setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64 "
        "shutdown socketcall",
    ),
    (
        "inter-process communication",
        "ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl "
        "shmget shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 "
        "mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr",
    ),
)
# Calls of one architecture family, by the host's native architecture.
_X86 = "arch_prctl modify_ldt"
_ARM = "arm_fadvise64_64 arm_sync_file_range breakpoint cacheflush set_tls"
_PPC = "sync_file_range2 swapcontext"
_S390 = "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"
_ARCH_ALLOWED = {
    "SCMP_ARCH_X86_64": _X86,
    "SCMP_ARCH_X86": _X86,
    "SCMP_ARCH_AARCH64": _ARM,
    "SCMP_ARCH_ARM": _ARM,
    "SCMP_ARCH_PPC64LE": _PPC,
    "SCMP_ARCH_PPC64": _PPC,
    "SCMP_ARCH_PPC": _PPC,
    "SCMP_ARCH_S390X": _S390,
    "SCMP_ARCH_S390": _S390,
    "SCMP_ARCH_RISCV64": "riscv_flush_icache",
}
# Calls that reach beyond the container unless the kernel's capability check stops
# them: allowed when the container holds the capability, as outside one.
_MOUNTS = (
    "mount umount umount2 fsopen fsconfig fsmount fspick move_mount open_tree open_tree_attr mount_setattr"
)
_CAPABILITY_ALLOWED: tuple[tuple[str, str], ...] = (
    (
        "CAP_SYS_ADMIN",
        f"{_MOUNTS} unshare setns clone clone3 sethostname setdomainname bpf perf_event_open "
        "fanotify_init name_to_handle_at quotactl quotactl_fd lookup_dcookie syslog",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "init_module finit_module delete_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
)
# iopl and ioperm exist on x86 only.
_X86_ONLY = frozenset(("iopl", "ioperm"))
# The namespace flags of clone(2): CLONE_NEWNS, CLONE_NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NAMESPACE_FLAGS = 0x7E020000
# The execution domains ordinary programs ask for: PER_LINUX, PER_LINUX32 (`linux32`),
# UNAME26, both of those, and 0xffffffff, which only asks for the current one.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK, ENOSYS = 40, 38
# The groups above, as lists of names (read by tests and by a person checking the profile).
DEFAULT_GROUPS = {group: tuple(names.split()) for group, names in _ALLOWED}


def _allow(names: str | list[str], *args: Arg) -> dict[str, object]:
    rule: dict[str, object] = {"names": names.split() if isinstance(names, str) else names}
    rule["action"] = "SCMP_ACT_ALLOW"
    if args:
        rule["args"] = [{"index": i, "value": v, "valueTwo": two, "op": op} for i, v, two, op in args]
    return rule


def _conditional(native: str, admin: bool) -> list[dict[str, object]]:
    """personality, socket, and clone/clone3 without CAP_SYS_ADMIN: allowed for some arguments."""
    rules = [_allow("personality", (0, p, 0, "SCMP_CMP_EQ")) for p in PERSONALITIES]
    rules.append(_allow("socket", (0, AF_VSOCK, 0, "SCMP_CMP_NE")))  # vsock reaches the hypervisor
    if not admin:
        # s390's clone takes the stack first and the flags second.
        flags_arg = 1 if native in ("SCMP_ARCH_S390X", "SCMP_ARCH_S390") else 0
        rules.append(_allow("clone", (flags_arg, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ")))
        # clone3 passes its flags in memory, out of seccomp's sight: ENOSYS makes libc fall back to clone.
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return rules


def _by_capability(capabilities: frozenset[int], native: str) -> list[dict[str, object]]:
    rules, granted = [], set()
    x86 = native in ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86")
    for cap, names in _CAPABILITY_ALLOWED:
        if _CAPABILITY_NUMBERS[cap] in capabilities:
            # One allowance per name: two caps may grant the same call (syslog, bpf, perf_event_open).
            new = [n for n in names.split() if n not in granted and (x86 or n not in _X86_ONLY)]
            granted.update(new)
            if new:
                rules.append(_allow(new))
    return rules


def default_profile(capabilities: frozenset[int], machine: str) -> dict[str, object]:
    """pyctr's default linux.seccomp for a container with these capabilities on this host."""
    arches = architectures(machine)
    native = arches[0] if arches else ""
    rules = [_allow(list(names)) for names in DEFAULT_GROUPS.values()]
    if native in _ARCH_ALLOWED:
        rules.append(_allow(_ARCH_ALLOWED[native]))
    admin = _CAPABILITY_NUMBERS["CAP_SYS_ADMIN"] in capabilities
    rules += _conditional(native, admin)
    rules += _by_capability(capabilities, native)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": list(arches),
        "syscalls": rules,
    }


def default_filter(capabilities: frozenset[int], machine: str) -> SyscallFilter:
    """default_profile, parsed (it uses no docker conditions, so no kernel release is needed)."""
    return parse(
        default_profile(capabilities, machine),
        "pyctr's default seccomp profile",
        "",
        capabilities,
        machine,
        "",
    )
