"""A seccomp filter compiled to its BPF program by libseccomp, in pyctr's own process.

The container's first process only loads the program (init.identity): compiling
a profile like docker's takes libseccomp some 8 ms, which pyctr spends while the
launcher starts up and systemd makes the unit, instead of on the way to the
payload. How the runtime-spec's rules become libseccomp's is runc's reading:
a rule that does what the default does is left out (libseccomp refuses it),
conditions on distinct arguments must all hold, and several on one argument
are rules of their own; a syscall this libseccomp does not know is skipped.
"""

from __future__ import annotations

import errno
import os

from pyctr_systemd.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.seccomp_profile import SyscallFilter

_UNKNOWN = -1  # libseccomp's __NR_SCMP_ERROR
# seccomp(2)'s flags for the runtime-spec's; WAIT_KILLABLE_RECV only concerns a listener,
# and pyctr refuses SCMP_ACT_NOTIFY.
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}


def compile(wanted: SyscallFilter) -> tuple[bytes, int]:
    """The BPF program of a filter, and the flags of seccomp(2) to load it with."""
    import seccomp

    built = seccomp.SyscallFilter(_action(seccomp, wanted.default_action, wanted.default_errno))
    for arch in wanted.architectures:
        _add_arch(seccomp, built, arch)
    default = _resolved(wanted.default_action, wanted.default_errno)
    for rule in wanted.rules:
        if _resolved(rule.action, rule.errno) == default:
            continue  # libseccomp refuses a rule that does what the default does
        action = _action(seccomp, rule.action, rule.errno)
        for name in rule.names:
            _add_rule(seccomp, built, action, name, rule.args)
    with os.fdopen(os.memfd_create("pyctr-bpf", os.MFD_CLOEXEC), "w+b") as out:
        try:
            built.export_bpf(out)
        except (OSError, RuntimeError, ValueError) as e:
            raise InvalidArgument(f"libseccomp cannot compile the seccomp filter: {e}") from None
        out.seek(0)
        return out.read(), sum(_FLAGS.get(flag, 0) for flag in wanted.flags)


_OPERATORS = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}


def _resolved(name: str, errno_ret: int | None) -> tuple[str, int | None]:
    """An action with its errno as the kernel will see it: EPERM when none is given."""
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return name, errno.EPERM if errno_ret is None else errno_ret
    return name, None


def _action(seccomp: object, name: str, errno_ret: int | None) -> object:
    lib = seccomp
    name, errno_ret = _resolved(name, errno_ret)
    if name == "SCMP_ACT_ERRNO":
        return lib.ERRNO(errno_ret)  # type: ignore[attr-defined]
    if name == "SCMP_ACT_TRACE":
        return lib.TRACE(errno_ret)  # type: ignore[attr-defined]
    simple = {
        "SCMP_ACT_ALLOW": "ALLOW",
        "SCMP_ACT_KILL": "KILL",  # the thread, as the runtime-spec says
        "SCMP_ACT_KILL_THREAD": "KILL",
        "SCMP_ACT_KILL_PROCESS": "KILL_PROCESS",
        "SCMP_ACT_TRAP": "TRAP",
        "SCMP_ACT_LOG": "LOG",
    }
    return getattr(lib, simple[name])


def _add_arch(seccomp: object, built: object, name: str) -> None:
    arch = getattr(seccomp.Arch, name.removeprefix("SCMP_ARCH_"), None)  # type: ignore[attr-defined]
    if arch is None:
        raise InvalidArgument(f"libseccomp does not know the seccomp architecture {name}")
    try:
        built.add_arch(arch)  # type: ignore[attr-defined]
    except RuntimeError:
        pass  # the native one is there already


def _add_rule(
    seccomp: object, built: object, action: object, name: str, args: tuple[tuple[int, int, int, str], ...]
) -> None:
    """One syscall's rule. Conditions on distinct arguments must all hold (one rule); several
    on the same argument cannot (libseccomp would AND them), so each is a rule of its own,
    any of which applies: how runc reads the runtime-spec."""
    lib = seccomp
    # A name this libseccomp does not know (newer than it) is skipped, as runc does. Other
    # negative numbers are libseccomp's for calls of another architecture of the filter
    # (mmap2, socketcall on x86): those it places itself.
    if lib.resolve_syscall(lib.Arch.NATIVE, name) == _UNKNOWN:  # type: ignore[attr-defined]
        return
    conditions = [lib.Arg(index, getattr(lib, _OPERATORS[op]), value, two) for index, value, two, op in args]  # type: ignore[attr-defined]
    indexes = [index for index, _, _, _ in args]
    if len(set(indexes)) == len(indexes):
        built.add_rule(action, name, *conditions)  # type: ignore[attr-defined]
    else:
        for condition in conditions:
            built.add_rule(action, name, condition)  # type: ignore[attr-defined]
