"""config.json (OCI runtime-spec v1.x) read, checked and turned into a LaunchSpec.

Pure: a bundle's JSON in, a Config out, or a SpecError naming the JSON path and
the problem ("config.json: process.args: must be a non-empty list"). What pyctr
cannot honour becomes a warning or an error here, never silence. Written by
hand: Debian's python3-jsonschema would check types but not say what pyctr
does with each field, and it is not one of our dependencies. The one check
against this host (refuse_host_sysctls) stats two files and is kept apart.
"""

from __future__ import annotations

import json
import os

from pyctr_systemd import mounts, seccomp_profile
from pyctr_systemd import syscalls as sc
from pyctr_systemd.errors import InvalidArgument
from pyctr_systemd.hooks import KINDS, Hook
from pyctr_systemd.init import launch
from pyctr_systemd.limits import MAX_CPUS, cpu_mask
from pyctr_systemd.mounts import Device, MountEntry
from pyctr_systemd.resources import DeviceRule, Resources

CAPABILITIES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
    "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
    "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME "
    "SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG "
    "WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
).split()
CAPABILITY_NUMBERS = {f"CAP_{name}": n for n, name in enumerate(CAPABILITIES)}
CAPABILITIES_BY_NUMBER = {n: name for name, n in CAPABILITY_NUMBERS.items()}
_RLIMIT_NAMES = (
    "CPU FSIZE DATA STACK CORE RSS NPROC NOFILE MEMLOCK AS LOCKS SIGPENDING MSGQUEUE NICE RTPRIO RTTIME"
)
RLIMITS = {f"RLIMIT_{name}": n for n, name in enumerate(_RLIMIT_NAMES.split())}
NAMESPACES = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "cgroup": sc.CLONE_NEWCGROUP,
    "user": sc.CLONE_NEWUSER,
    "time": sc.CLONE_NEWTIME,
}
UNSUPPORTED_NAMESPACES = ("user", "time")
ROOTFS_PROPAGATION = {k: v | sc.MS_REC for k, v in mounts.PROPAGATION.items() if not k.startswith("r")}
ROOTFS_PROPAGATION.update({f"r{k}": v for k, v in ROOTFS_PROPAGATION.items()})
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1
# Fields pyctr does not act on, and what running without them means.
NOT_HONOURED = {
    "process.selinuxLabel": "the container runs without an SELinux label",
    "process.ioPriority": "the payload keeps the default I/O priority",
    "process.scheduler": "the payload keeps the default scheduler",
    "linux.intelRdt": "no Intel RDT allocation is made",
    "linux.mountLabel": "mounts get no SELinux label",
    "linux.personality": "the personality is not changed",
    "linux.resources.blockIO": "block I/O is not limited",
    "linux.resources.hugepageLimits": "huge pages are not limited",
    "linux.resources.network": "network priorities are not set",
    "linux.resources.rdma": "RDMA is not limited",
    "linux.resources.unified": "cgroup v2 files are not written",
    "linux.resources.memory.kernel": "kernel memory is not limited",
    "linux.resources.memory.kernelTCP": "kernel TCP memory is not limited",
    "linux.resources.memory.swappiness": "swappiness is not set",
    "linux.resources.memory.disableOOMKiller": "the kernel's OOM killer stays on",
    "linux.resources.memory.useHierarchy": "memory.use_hierarchy is left as systemd sets it",
    "linux.resources.memory.checkBeforeUpdate": "a lower limit is applied without checking usage first",
    "linux.resources.cpu.idle": "the idle scheduling policy is not set",
    "linux.resources.cpu.burst": "no CPU burst is allowed",
    "linux.resources.cpu.realtimeRuntime": "real-time CPU time is not set",
    "linux.resources.cpu.realtimePeriod": "real-time CPU period is not set",
}


class SpecError(InvalidArgument):
    def __init__(self, path: str, problem: str, source: str = "config.json") -> None:
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")
        self.path, self.problem = path, problem


class Process:
    __slots__ = (
        "args",
        "env",
        "cwd",
        "uid",
        "gid",
        "additional_gids",
        "umask",
        "terminal",
        "console_size",
        "capabilities",
        "rlimits",
        "no_new_privileges",
        "oom_score_adj",
        "apparmor_profile",
    )

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    umask: int | None
    terminal: bool
    console_size: tuple[int, int] | None
    capabilities: launch.Capabilities
    rlimits: tuple[tuple[int, int, int], ...]
    no_new_privileges: bool
    oom_score_adj: int | None
    apparmor_profile: str


class Config:
    """What a bundle's config.json asks for, checked."""

    __slots__ = (
        "bundle",
        "oci_version",
        "root_path",
        "root_readonly",
        "hostname",
        "process",
        "mounts",
        "namespaces",
        "resources",
        "devices",
        "masked_paths",
        "readonly_paths",
        "sysctl",
        "propagation",
        "cgroups_path",
        "seccomp",
        "hooks",
        "annotations",
        "warnings",
    )

    bundle: str
    oci_version: str
    root_path: str
    root_readonly: bool
    hostname: str
    process: Process
    mounts: tuple[MountEntry, ...]
    namespaces: tuple[tuple[int, str], ...]
    resources: Resources
    devices: tuple[Device, ...]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    sysctl: tuple[tuple[str, str], ...]
    propagation: int
    cgroups_path: str
    seccomp: seccomp_profile.SyscallFilter | None
    hooks: dict[str, tuple[Hook, ...]]
    annotations: dict[str, str]
    warnings: list[str]


# --- typed access with the JSON path in every error --------------------------------


def _obj(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise SpecError(path, "must be an object")
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise SpecError(path, "must be a list")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise SpecError(path, "must be a string")
    return value


def _strings(value: object, path: str) -> tuple[str, ...]:
    return tuple(_str(v, f"{path}[{i}]") for i, v in enumerate(_list(value, path)))


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, "must be true or false")
    return value


def _int(value: object, path: str, low: int = -INT64_MAX - 1, high: int = 2**64 - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(path, "must be an integer")
    if not low <= value <= high:
        raise SpecError(path, f"must be {low} to {high}")
    return value


def _opt(obj: dict[str, object], key: str) -> object | None:
    return obj.get(key)


# --- the parts -----------------------------------------------------------------------


def _capabilities(value: object, warnings: list[str]) -> launch.Capabilities:
    caps = _obj(value, "process.capabilities")
    sets: dict[str, frozenset[int]] = {}
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        path = f"process.capabilities.{name}"
        numbers = set()
        for cap in _strings(caps.get(name, []), path):
            if cap in CAPABILITY_NUMBERS:
                numbers.add(CAPABILITY_NUMBERS[cap])
            else:
                warnings.append(f"{path}: unknown capability {cap} ignored")
        sets[name] = frozenset(numbers)
    return launch.Capabilities(**sets)


def _rlimits(value: object) -> tuple[tuple[int, int, int], ...]:
    result, seen = [], set()
    for i, item in enumerate(_list(value, "process.rlimits")):
        path = f"process.rlimits[{i}]"
        rl = _obj(item, path)
        kind = _str(rl.get("type"), f"{path}.type")
        if kind not in RLIMITS:
            raise SpecError(f"{path}.type", f"unknown resource limit {kind}")
        if kind in seen:
            raise SpecError(f"{path}.type", f"{kind} is given twice")
        seen.add(kind)
        soft = _int(rl.get("soft"), f"{path}.soft", 0)
        hard = _int(rl.get("hard"), f"{path}.hard", 0)
        if soft > hard:
            raise SpecError(path, "soft limit is above the hard limit")
        result.append((RLIMITS[kind], soft, hard))
    return tuple(result)


def parse_process(value: object, warnings: list[str], path: str = "process") -> Process:
    """process, also the whole of `pyctr exec --process FILE`."""
    proc = _obj(value, path)
    p = Process()
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise SpecError(f"{path}.args", "must be a non-empty list of strings")
    p.args = tuple(args)
    p.env = _strings(proc.get("env", []), f"{path}.env")
    p.cwd = _str(proc.get("cwd", "/"), f"{path}.cwd")
    if not p.cwd.startswith("/"):
        raise SpecError(f"{path}.cwd", f"must be an absolute path, not {p.cwd!r}")
    user = _obj(proc.get("user", {}), f"{path}.user")
    p.uid = _int(user.get("uid", 0), f"{path}.user.uid", 0, UINT32_MAX - 1)
    p.gid = _int(user.get("gid", 0), f"{path}.user.gid", 0, UINT32_MAX - 1)
    p.additional_gids = tuple(
        _int(g, f"{path}.user.additionalGids[{i}]", 0, UINT32_MAX - 1)
        for i, g in enumerate(_list(user.get("additionalGids", []), f"{path}.user.additionalGids"))
    )
    umask = _opt(user, "umask")
    p.umask = None if umask is None else _int(umask, f"{path}.user.umask", 0, 0o777)
    p.terminal = _bool(proc.get("terminal", False), f"{path}.terminal")
    size = _opt(proc, "consoleSize")
    if size is None:
        p.console_size = None
    else:
        cs = _obj(size, f"{path}.consoleSize")
        p.console_size = (
            _int(cs.get("height", 0), f"{path}.consoleSize.height", 0, 65535),
            _int(cs.get("width", 0), f"{path}.consoleSize.width", 0, 65535),
        )
    caps = _opt(proc, "capabilities")
    p.capabilities = (
        _capabilities(caps, warnings) if caps is not None else launch.Capabilities(*[frozenset()] * 5)
    )
    p.rlimits = _rlimits(proc.get("rlimits", []))
    p.no_new_privileges = _bool(proc.get("noNewPrivileges", False), f"{path}.noNewPrivileges")
    oom = _opt(proc, "oomScoreAdj")
    p.oom_score_adj = None if oom is None else _int(oom, f"{path}.oomScoreAdj", -1000, 1000)
    p.apparmor_profile = _str(proc.get("apparmorProfile", ""), f"{path}.apparmorProfile")
    if any(c in p.apparmor_profile for c in "\0\n"):
        raise SpecError(f"{path}.apparmorProfile", "must be a profile name on one line")
    for key in ("selinuxLabel", "ioPriority", "scheduler"):
        if proc.get(key):
            warnings.append(f"{path}.{key} is not supported: {NOT_HONOURED['process.' + key]}")
    return p


def _mounts(value: object, bundle: str) -> tuple[MountEntry, ...]:
    result = []
    for i, item in enumerate(_list(value, "mounts")):
        path = f"mounts[{i}]"
        m = _obj(item, path)
        dest = _str(m.get("destination"), f"{path}.destination")
        if not dest.startswith("/"):
            raise SpecError(f"{path}.destination", f"must be an absolute path, not {dest!r}")
        fstype = _str(m.get("type", "bind" if "bind" in str(m.get("options")) else ""), f"{path}.type")
        source = _str(m.get("source", fstype), f"{path}.source")
        options = _strings(m.get("options", []), f"{path}.options")
        entry = mounts.entry(_normalised(dest), fstype, source, options)
        if entry.bind:
            entry.source = os.path.normpath(os.path.join(bundle, source))
        elif not fstype:
            raise SpecError(f"{path}.type", "must name a filesystem type (or the mount must be a bind mount)")
        _check_proc_mount(entry, f"{path}.destination")
        result.append(entry)
    return tuple(result)


def _normalised(path: str) -> str:
    """An absolute path with no . or .. and no doubled slash ("//x" is not normpath's business)."""
    return os.path.normpath("/" + path.lstrip("/"))


def _check_proc_mount(entry: MountEntry, path: str) -> None:
    """Refuse a mount in /proc (runc's rule): over /proc/sys/kernel, say, it could make the
    kernel seem to say anything, cap_last_cap included."""
    dest = entry.destination
    if dest == "/proc" and entry.fstype == "proc" and not entry.bind:
        return
    if dest in mounts.PROC_FILES and entry.bind:
        return
    if dest == "/proc" or dest.startswith("/proc/"):
        raise SpecError(
            path,
            f"{dest} is inside /proc: only a proc filesystem at /proc and bind mounts onto the files "
            "lxcfs provides (/proc/cpuinfo, /proc/meminfo, /proc/uptime...) may be mounted there",
        )


def _refuse_binds_in_proc(entries: tuple[MountEntry, ...]) -> None:
    """With a joined pid namespace /proc is mounted after pivot_root (init.rootfs.proc_plan),
    where a bind mount's host source is out of reach."""
    for i, entry in enumerate(entries):
        if entry.bind and (entry.destination + "/").startswith("/proc/"):
            raise SpecError(
                f"mounts[{i}].destination",
                f"a bind mount on {entry.destination} needs a pid namespace of the container's own",
            )


def _namespaces(value: object) -> tuple[tuple[int, str], ...]:
    result, seen = [], set()
    for i, item in enumerate(_list(value, "linux.namespaces")):
        path = f"linux.namespaces[{i}]"
        ns = _obj(item, path)
        kind = _str(ns.get("type"), f"{path}.type")
        if kind not in NAMESPACES:
            raise SpecError(f"{path}.type", f"unknown namespace type {kind!r}")
        if kind in UNSUPPORTED_NAMESPACES:
            raise SpecError(f"{path}.type", f"{kind} namespaces are not supported by pyctr yet")
        if kind in seen:
            raise SpecError(f"{path}.type", f"the {kind} namespace is given twice")
        seen.add(kind)
        ns_path = _str(ns.get("path", ""), f"{path}.path")
        if ns_path and not ns_path.startswith("/"):
            raise SpecError(f"{path}.path", "must be an absolute path")
        result.append((NAMESPACES[kind], ns_path))
    return tuple(result)


def _refuse_host_mounts(c: Config, linux: dict[str, object]) -> None:
    """Without a mount namespace of its own the container shares the runtime's, and pyctr
    only chroots into root.path: whatever the config would mount or make in the root would
    be done in the host's mount namespace, so it is refused, not done; so is what needs the
    container's own /dev or /proc (a console, an AppArmor profile)."""
    fields = {
        "process.terminal": c.process.terminal,
        "process.apparmorProfile": bool(c.process.apparmor_profile),
        "mounts": bool(c.mounts),
        "root.readonly": c.root_readonly,
        "linux.maskedPaths": bool(c.masked_paths),
        "linux.readonlyPaths": bool(c.readonly_paths),
        "linux.devices": bool(c.devices),
        "linux.rootfsPropagation": "rootfsPropagation" in linux,
    }
    for field, asked in fields.items():
        if asked:
            raise SpecError(field, "needs a mount namespace (linux.namespaces has no mount entry)")


def _absolute_paths(value: object, path: str) -> tuple[str, ...]:
    paths = _strings(value, path)
    for i, p in enumerate(paths):
        if not p.startswith("/"):
            raise SpecError(f"{path}[{i}]", "must be an absolute path")
    return paths


def _size(value: object, path: str) -> int:
    return _int(value, path, -1, INT64_MAX)


def parse_resources(
    value: object, warnings: list[str], path: str = "linux.resources", source: str = "config.json"
) -> Resources:
    """linux.resources, also the whole of `pyctr update -r FILE` (path "", source the file).

    A number that is 0 is "not set", as runc reads it: docker writes cpu.shares and
    blockIO.weight 0 into every config.json, and `update` JSON with every field, 0 meaning
    unchanged.
    """
    try:
        return _resources(value, warnings, path)
    except SpecError as e:
        if source == "config.json":
            raise
        raise SpecError(e.path, e.problem, source) from None


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unset(value: object) -> bool:
    return value is None or (type(value) is int and value == 0)


def _resources(value: object, warnings: list[str], path: str) -> Resources:
    res = _obj(value, path)
    memory = _obj(res.get("memory", {}), _at(path, "memory"))
    cpu = _obj(res.get("cpu", {}), _at(path, "cpu"))
    pids = _obj(res.get("pids", {}), _at(path, "pids"))

    def opt(obj: dict[str, object], key: str, where: str, low: int = -1, high: int = INT64_MAX) -> int | None:
        v = obj.get(key)
        return None if _unset(v) else _int(v, _at(path, f"{where}.{key}"), low, high)

    r = Resources(
        memory_limit=opt(memory, "limit", "memory"),
        memory_reservation=opt(memory, "reservation", "memory"),
        memory_swap=opt(memory, "swap", "memory"),
        cpu_shares=opt(cpu, "shares", "cpu", 2, 262144),
        cpu_quota=opt(cpu, "quota", "cpu"),
        cpu_period=opt(cpu, "period", "cpu", 1000, 1_000_000),
        cpu_cpus=_cpu_list(cpu.get("cpus"), _at(path, "cpu.cpus")),
        cpu_mems=_cpu_list(cpu.get("mems"), _at(path, "cpu.mems")),
        pids_limit=opt(pids, "limit", "pids"),
        devices=_device_rules(res.get("devices", []), _at(path, "devices")),
    )
    for key in ("blockIO", "hugepageLimits", "network", "rdma", "unified"):
        if _asks_for_something(res.get(key)):
            warnings.append(f"{_at(path, key)} is not supported: {NOT_HONOURED['linux.resources.' + key]}")
    for group, obj, keys in (
        (
            "memory",
            memory,
            ("kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"),
        ),
        ("cpu", cpu, ("realtimeRuntime", "realtimePeriod", "idle", "burst")),
    ):
        for key in keys:
            v = obj.get(key)
            if (v not in (None, -1, 2**64 - 1)) if key == "swappiness" else _asks_for_something(v):
                reason = NOT_HONOURED[f"linux.resources.{group}.{key}"]
                warnings.append(f"{_at(path, f'{group}.{key}')} is not supported: {reason}")
    return r


def _asks_for_something(value: object) -> bool:
    """Anything but absent, 0, false, or objects and lists of those (docker's blockIO
    {"weight": 0})."""
    if value is False:
        return False
    if isinstance(value, dict):
        return any(_asks_for_something(v) for v in value.values())
    if isinstance(value, list):
        return any(_asks_for_something(v) for v in value)
    return not _unset(value) and value != ""


def _cpu_list(value: object, path: str) -> str | None:
    """A cpuset list such as "0-2,4" (also for memory nodes), checked now, not at create."""
    if not value:
        return None
    text = _str(value, path)
    try:
        cpu_mask(text)
    except ValueError:
        raise SpecError(
            path, f"{text!r} is not a list of numbers below {MAX_CPUS} and ranges like 0-2,4"
        ) from None
    return text


def cpu_list(value: str | None, option: str) -> str | None:
    """A cpuset list given on the command line (`update --cpuset-cpus`)."""
    try:
        return _cpu_list(value, "")
    except SpecError:
        raise InvalidArgument(
            f"invalid {option} {value!r}: use numbers below {MAX_CPUS} and ranges like 0-2,4"
        ) from None


def _device_rules(value: object, path: str) -> tuple[DeviceRule, ...]:
    rules = []
    for i, item in enumerate(_list(value, path)):
        where = f"{path}[{i}]"
        d = _obj(item, where)
        kind = _str(d.get("type", "a"), f"{where}.type")
        if kind not in ("a", "b", "c"):
            raise SpecError(f"{where}.type", "must be a, b or c")
        access = _str(d.get("access", "rwm"), f"{where}.access")
        if not access or set(access) - set("rwm"):
            raise SpecError(f"{where}.access", "must be letters of rwm")
        major, minor = d.get("major"), d.get("minor")
        rules.append(
            DeviceRule(
                _bool(d.get("allow"), f"{where}.allow"),
                kind,
                None if major in (None, -1) else _int(major, f"{where}.major", 0, UINT32_MAX),
                None if minor in (None, -1) else _int(minor, f"{where}.minor", 0, UINT32_MAX),
                access,
            )
        )
    return tuple(rules)


def _devices(value: object) -> tuple[Device, ...]:
    result = []
    for i, item in enumerate(_list(value, "linux.devices")):
        path = f"linux.devices[{i}]"
        d = _obj(item, path)
        dev_path = _normalised(_str(d.get("path"), f"{path}.path"))
        if not dev_path.startswith("/dev/"):
            raise SpecError(f"{path}.path", "must be below /dev")
        kind = _str(d.get("type"), f"{path}.type")
        if kind not in ("c", "b", "u", "p"):
            raise SpecError(f"{path}.type", "must be c, b, u or p")
        result.append(
            Device(
                dev_path,
                kind,
                _int(d.get("major", 0), f"{path}.major", 0, UINT32_MAX),
                _int(d.get("minor", 0), f"{path}.minor", 0, UINT32_MAX),
                # podman writes the file-type bits too (0o20600); runc keeps the permission bits
                _int(d.get("fileMode", 0o666), f"{path}.fileMode", 0, UINT32_MAX) & 0o7777,
                _int(d.get("uid", 0), f"{path}.uid", 0, UINT32_MAX - 1),
                _int(d.get("gid", 0), f"{path}.gid", 0, UINT32_MAX - 1),
            )
        )
    return tuple(result)


def _sysctl_namespace(key: str) -> int:
    """The namespace a sysctl belongs to, 0 for the host's own."""
    if key.startswith("net."):
        return sc.CLONE_NEWNET
    if key.startswith(("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")):
        return sc.CLONE_NEWIPC
    if key in ("kernel.hostname", "kernel.domainname"):
        return sc.CLONE_NEWUTS
    return 0


def _sysctl(value: object, namespaces: dict[int, str]) -> tuple[tuple[str, str], ...]:
    """Only sysctls of a namespace the container has of its own, as runc allows."""
    result = []
    for key, v in _obj(value, "linux.sysctl").items():
        path = f"linux.sysctl.{key}"
        if "/" in key or ".." in key:
            raise SpecError(path, "not a sysctl name")
        ns = _sysctl_namespace(key)
        if not ns:
            raise SpecError(path, "not namespaced: it would change the host")
        if ns not in namespaces:
            raise SpecError(path, "the container shares this sysctl's namespace with the host")
        result.append((key, _str(v, path)))
    return tuple(result)


def _hooks(value: object) -> dict[str, tuple[Hook, ...]]:
    hooks = _obj(value, "hooks")
    result: dict[str, tuple[Hook, ...]] = {}
    for kind in KINDS:
        found = []
        for i, item in enumerate(_list(hooks.get(kind, []), f"hooks.{kind}")):
            path = f"hooks.{kind}[{i}]"
            h = _obj(item, path)
            hook_path = _str(h.get("path"), f"{path}.path")
            if not hook_path.startswith("/"):
                raise SpecError(f"{path}.path", "must be an absolute path")
            timeout = h.get("timeout")
            found.append(
                Hook(
                    hook_path,
                    _strings(h.get("args", []), f"{path}.args"),
                    _strings(h.get("env", []), f"{path}.env"),
                    None if timeout is None else _int(timeout, f"{path}.timeout", 1, 2**31),
                )
            )
        result[kind] = tuple(found)
    return result


def parse(data: object, bundle: str) -> Config:
    """A Config from config.json's decoded JSON; `bundle` is its absolute directory."""
    top = _obj(data, "")
    c = Config()
    c.warnings = []
    c.bundle = bundle
    c.oci_version = _str(top.get("ociVersion"), "ociVersion")
    if not c.oci_version.startswith("1."):
        raise SpecError("ociVersion", f"version {c.oci_version} is not supported (1.x is)")
    root = _obj(top.get("root"), "root")
    c.root_path = os.path.normpath(os.path.join(bundle, _str(root.get("path"), "root.path")))
    c.root_readonly = _bool(root.get("readonly", False), "root.readonly")
    if "process" not in top:
        raise SpecError("process", "is required to create a container")
    c.process = parse_process(top["process"], c.warnings)
    c.hostname = _str(top.get("hostname", ""), "hostname")
    c.mounts = _mounts(top.get("mounts", []), bundle)
    c.hooks = _hooks(top.get("hooks", {}))
    c.annotations = {
        k: _str(v, f"annotations.{k}") for k, v in _obj(top.get("annotations", {}), "annotations").items()
    }
    linux = _obj(top.get("linux", {}), "linux")
    c.namespaces = _namespaces(linux.get("namespaces", []))
    made = dict(c.namespaces)
    if c.hostname and made.get(sc.CLONE_NEWUTS) is None:
        raise SpecError("hostname", "needs a uts namespace of the container's own")
    c.resources = parse_resources(linux.get("resources", {}), c.warnings)
    c.devices = _devices(linux.get("devices", []))
    c.masked_paths = _absolute_paths(linux.get("maskedPaths", []), "linux.maskedPaths")
    c.readonly_paths = _absolute_paths(linux.get("readonlyPaths", []), "linux.readonlyPaths")
    c.sysctl = _sysctl(linux.get("sysctl", {}), made)
    if made.get(sc.CLONE_NEWPID):
        _refuse_binds_in_proc(c.mounts)
    propagation = _str(linux.get("rootfsPropagation", "rprivate"), "linux.rootfsPropagation")
    if propagation not in ROOTFS_PROPAGATION:
        raise SpecError("linux.rootfsPropagation", f"unknown propagation {propagation!r}")
    c.propagation = ROOTFS_PROPAGATION[propagation]
    if sc.CLONE_NEWNS not in made:
        _refuse_host_mounts(c, linux)
    c.cgroups_path = _str(linux.get("cgroupsPath", ""), "linux.cgroupsPath")
    c.seccomp = _seccomp(linux.get("seccomp"), c.process.capabilities.bounding)
    for key in ("intelRdt", "mountLabel", "personality"):
        if linux.get(key):
            c.warnings.append(f"linux.{key} is not supported: {NOT_HONOURED['linux.' + key]}")
    for key in ("uidMappings", "gidMappings"):
        if linux.get(key):
            raise SpecError(f"linux.{key}", "needs a user namespace, which pyctr does not support yet")
    return c


def _seccomp(value: object, bounding: frozenset[int]) -> seccomp_profile.SyscallFilter | None:
    if value is None:
        return None
    host = os.uname()
    return seccomp_profile.parse(value, "config.json", "linux.seccomp", bounding, host.machine, host.release)


def loads(text: str | bytes, source: str) -> object:
    """JSON from a user's file or stdin; its errors are one line naming `source`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidArgument(f"{source}: not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise InvalidArgument(f"{source}: not valid JSON: {e}") from None


# --- checks against this host ------------------------------------------------------------

_PROC_NS = {sc.CLONE_NEWNET: "net", sc.CLONE_NEWIPC: "ipc", sc.CLONE_NEWUTS: "uts"}


def refuse_host_sysctls(c: Config) -> None:
    """A namespace joined by path may be the host's own: its sysctls would be the host's."""
    joined = {flag: path for flag, path in c.namespaces if path}
    for key, _ in c.sysctl:
        flag = _sysctl_namespace(key)
        path = joined.get(flag)
        if path is not None and _same_file(path, f"/proc/self/ns/{_PROC_NS[flag]}"):
            raise SpecError(f"linux.sysctl.{key}", f"{path} is the host's {_PROC_NS[flag]} namespace")


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def load(bundle: str) -> Config:
    """The bundle's config.json, parsed; errors name the file's problem in one line."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"no config.json in bundle {bundle}") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
    return parse(loads(text, "config.json"), bundle)


def launch_spec(c: Config, process: Process | None = None) -> launch.LaunchSpec:
    """What the launcher needs from a Config (hooks and console are the caller's to add)."""
    p = process or c.process
    return launch.LaunchSpec(
        rootfs=c.root_path,
        argv=p.args,
        env=p.env,
        cwd=p.cwd,
        hostname=c.hostname,
        readonly_root=c.root_readonly,
        mounts=c.mounts,
        namespaces=c.namespaces,
        propagation=c.propagation,
        masked_paths=c.masked_paths,
        readonly_paths=c.readonly_paths,
        devices=c.devices,
        sysctl=c.sysctl,
        uid=p.uid,
        gid=p.gid,
        additional_gids=p.additional_gids,
        umask=p.umask,
        capabilities=p.capabilities,
        rlimits=p.rlimits,
        no_new_privileges=p.no_new_privileges,
        seccomp=c.seccomp,
        oom_score_adj=p.oom_score_adj,
        apparmor_profile=p.apparmor_profile,
        terminal=p.terminal,
        console_size=p.console_size,
    )
