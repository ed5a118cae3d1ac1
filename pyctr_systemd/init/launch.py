"""What the container's first process is to make: a LaunchSpec, and its form on the wire.

The spec crosses an exec (the launcher re-executes itself from a sealed
interpreter, pyctr_systemd.init.seal), so it travels as marshal data: plain
tuples, strings and numbers, rebuilt into the same objects on the other side.
Its seccomp filter does not: the launcher gets it compiled (init.bpf).
"""

from __future__ import annotations

from pyctr_systemd import syscalls as sc
from pyctr_systemd.hooks import Hook
from pyctr_systemd.mounts import DEFAULT_MOUNTS, MASKED_PATHS, READONLY_PATHS, Device, MountEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyctr_systemd.seccomp_profile import SyscallFilter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default set: enough for ordinary root payloads, without SYS_ADMIN,
# SYS_MODULE, SYS_PTRACE, NET_ADMIN and the rest (capabilities(7) numbers).
DEFAULT_CAPABILITIES = frozenset(
    {
        0,  # CHOWN
        1,  # DAC_OVERRIDE
        3,  # FOWNER
        4,  # FSETID
        5,  # KILL
        6,  # SETGID
        7,  # SETUID
        8,  # SETPCAP
        10,  # NET_BIND_SERVICE
        13,  # NET_RAW
        18,  # SYS_CHROOT
        27,  # MKNOD
        29,  # AUDIT_WRITE
        31,  # SETFCAP
    }
)

DEFAULT_NAMESPACES = (
    (sc.CLONE_NEWPID, ""),
    (sc.CLONE_NEWNS, ""),
    (sc.CLONE_NEWUTS, ""),
    (sc.CLONE_NEWIPC, ""),
    (sc.CLONE_NEWNET, ""),
    (sc.CLONE_NEWCGROUP, ""),
)


class Capabilities:
    """The five capability sets of the payload (capabilities(7) numbers)."""

    __slots__ = ("bounding", "effective", "permitted", "inheritable", "ambient")

    def __init__(
        self,
        bounding: frozenset[int] = DEFAULT_CAPABILITIES,
        effective: frozenset[int] = DEFAULT_CAPABILITIES,
        permitted: frozenset[int] = DEFAULT_CAPABILITIES,
        inheritable: frozenset[int] = frozenset(),
        ambient: frozenset[int] = frozenset(),
    ) -> None:
        self.bounding, self.effective, self.permitted = bounding, effective, permitted
        self.inheritable, self.ambient = inheritable, ambient


class LaunchSpec:
    """Everything the container's process is; defaults are `pyctr run`'s."""

    __slots__ = (
        "rootfs",
        "argv",
        "env",
        "cwd",
        "hostname",
        "pivot",
        "ephemeral",
        "readonly_root",
        "mounts",
        "namespaces",
        "propagation",
        "masked_paths",
        "readonly_paths",
        "devices",
        "sysctl",
        "uid",
        "gid",
        "additional_gids",
        "umask",
        "capabilities",
        "rlimits",
        "no_new_privileges",
        "seccomp",
        "keyring",
        "oom_score_adj",
        "apparmor_profile",
        "terminal",
        "console_size",
        "console_socket",
        "exec_fifo",
        "create_container_hooks",
        "start_container_hooks",
        "hook_state",
    )

    def __init__(
        self,
        *,
        rootfs: str,
        argv: tuple[str, ...],
        env: tuple[str, ...],
        cwd: str = "/",
        hostname: str = "",
        pivot: bool = True,
        ephemeral: bool = False,
        readonly_root: bool = False,
        mounts: tuple[MountEntry, ...] = DEFAULT_MOUNTS,
        namespaces: tuple[tuple[int, str], ...] = DEFAULT_NAMESPACES,
        propagation: int = sc.MS_REC | sc.MS_PRIVATE,
        masked_paths: tuple[str, ...] = MASKED_PATHS,
        readonly_paths: tuple[str, ...] = READONLY_PATHS,
        devices: tuple[Device, ...] = (),
        sysctl: tuple[tuple[str, str], ...] = (),
        uid: int = 0,
        gid: int = 0,
        additional_gids: tuple[int, ...] = (),
        umask: int | None = None,
        capabilities: Capabilities | None = None,
        rlimits: tuple[tuple[int, int, int], ...] = (),
        no_new_privileges: bool = False,
        seccomp: SyscallFilter | None = None,
        keyring: str = "",
        oom_score_adj: int | None = None,
        apparmor_profile: str = "",
        terminal: bool = False,
        console_size: tuple[int, int] | None = None,
        console_socket: str = "",
        exec_fifo: str = "",
        create_container_hooks: tuple[Hook, ...] = (),
        start_container_hooks: tuple[Hook, ...] = (),
        hook_state: dict[str, object] | None = None,
    ) -> None:
        self.rootfs = rootfs  # "" until the default rootfs is resolved
        self.argv, self.env = argv, env  # env: "KEY=VALUE" strings
        self.cwd, self.hostname, self.pivot = cwd, hostname, pivot
        # Writes go to a layer of their own, dropped at exit: the shared default
        # rootfs must stay as it was built.
        self.ephemeral, self.readonly_root = ephemeral, readonly_root
        self.mounts, self.namespaces, self.propagation = mounts, namespaces, propagation
        self.masked_paths, self.readonly_paths = masked_paths, readonly_paths
        self.devices, self.sysctl = devices, sysctl
        self.uid, self.gid, self.additional_gids, self.umask = uid, gid, additional_gids, umask
        self.capabilities = capabilities or Capabilities()
        self.rlimits, self.no_new_privileges, self.oom_score_adj = rlimits, no_new_privileges, oom_score_adj
        self.apparmor_profile = apparmor_profile
        # The seccomp filter (None: none), which pyctr compiles and sends with GO
        # (init.sync), and the session keyring the container gets ("": the caller's).
        self.seccomp, self.keyring = seccomp, keyring
        self.terminal, self.console_size, self.console_socket = terminal, console_size, console_socket
        self.exec_fifo = exec_fifo  # "": the parent says when to start
        self.create_container_hooks, self.start_container_hooks = (
            create_container_hooks,
            start_container_hooks,
        )
        self.hook_state = hook_state  # the state hooks read on stdin; pid filled in by the child

    def namespace(self, flag: int) -> str | None:
        """ "" to make the namespace, a path to join it, None to share pyctr's."""
        for kind, path in self.namespaces:
            if kind == flag:
                return path
        return None


def _fields(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, name) for name in obj.__slots__)  # type: ignore[attr-defined]


# LaunchSpec fields that hold objects, and how each is rebuilt from its fields.
_NESTED: dict[str, type] = {
    "capabilities": Capabilities,
    "mounts": MountEntry,
    "devices": Device,
    "create_container_hooks": Hook,
    "start_container_hooks": Hook,
}


def to_wire(spec: LaunchSpec) -> tuple[object, ...]:
    """The spec as plain data for marshal, in slot order; the seccomp filter stays behind."""
    wire: list[object] = []
    for name in LaunchSpec.__slots__:
        value = getattr(spec, name)
        if name == "seccomp":
            value = None
        elif name == "capabilities":
            value = _fields(value)
        elif name in _NESTED:
            value = tuple(_fields(item) for item in value)
        wire.append(value)
    return tuple(wire)


def from_wire(wire: tuple[object, ...]) -> LaunchSpec:
    values = dict(zip(LaunchSpec.__slots__, wire, strict=True))
    for name, kind in _NESTED.items():
        if name == "capabilities":
            values[name] = kind(*values[name])  # type: ignore[misc]
        else:
            values[name] = tuple(kind(*fields) for fields in values[name])  # type: ignore[attr-defined]
    return LaunchSpec(**values)  # type: ignore[arg-type]
