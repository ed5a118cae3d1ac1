"""What pyctr remembers of an OCI container between commands, under --root.

ROOT/ID/state.json holds what cannot be asked of the system: the bundle, the
creation time, the unit, the poststop hooks, and the init process's pid with
its start time (so a reused pid is never mistaken for the container). Status
is worked out live each time, never stored: the init process gone means
"stopped"; ROOT/ID/exec.fifo still there means "created" (`start` removes it);
a frozen cgroup means "paused"; else "running".

The state is trusted only as far as it is root's alone: pyctr refuses a state
directory or file that another user owns or may write (it names hooks to run
and a unit to stop), and even then acts only on the unit named for the
container's id, and on the recorded pid only while that process has the
recorded start time and lives in that unit.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from pyctr_systemd import cgroups, names
from pyctr_systemd.errors import ContainerExists, PyctrError

OCI_VERSION = "1.0.2"
DEFAULT_ROOT = "/run/pyctr"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
CLAIM_LOCK = ".lock"


class NoSuchContainer(PyctrError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} does not exist")


class InvalidState(PyctrError):
    pass


class DamagedState(PyctrError):
    pass


class UnsafeState(PyctrError):
    pass


# state.json's fields and their types; a record without a version is of the first.
STATE_VERSION = 1
_FIELDS: dict[str, type] = {
    "id": str,
    "pid": int,
    "start_time": int,
    "bundle": str,
    "rootfs": str,
    "created": str,
    "annotations": dict,
    "unit": str,
    "hooks": dict,
    "process": dict,
    "invocation": str,
    "cgroup": str,
}
_DEFAULTS: dict[str, object] = {"invocation": "", "cgroup": ""}


class Record:
    """A container's entry in the state directory."""

    __slots__ = tuple(_FIELDS)

    def __init__(
        self,
        id: str,
        pid: int,
        start_time: int,
        bundle: str,
        rootfs: str,
        created: str,
        annotations: dict[str, str],
        unit: str,
        hooks: dict[str, list[dict[str, object]]],
        process: dict[str, object],
        invocation: str = "",
        cgroup: str = "",
    ) -> None:
        self.id, self.pid, self.start_time = id, pid, start_time
        # systemd's InvocationID of the unit, hex: its name may be another's once it is gone.
        self.invocation = invocation
        self.cgroup = cgroup  # the unit's cgroup path, for the groups pyctr makes on cgroup v1
        self.bundle, self.rootfs, self.created = bundle, rootfs, created
        self.annotations, self.unit = annotations, unit
        self.hooks = hooks  # poststart and poststop: run by later commands
        self.process = process  # what exec takes from the container's process

    def as_json(self) -> dict[str, object]:
        return {"version": STATE_VERSION, **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def from_json(cls, data: object) -> Record:
        """A record as any pyctr of this state version wrote it: a field of the wrong type is
        damage (ValueError), an unknown one is a later pyctr's and is left alone."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        version = data.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ValueError(f"state version {version!r}, not {STATE_VERSION}")
        fields = {}
        for name, kind in _FIELDS.items():
            value = data.get(name, _DEFAULTS.get(name))
            if type(value) is not kind:
                raise ValueError(f"{name} is not {kind.__name__}")
            fields[name] = value
        return cls(**fields)  # type: ignore[arg-type]


def oci_state(record: Record, status: str) -> dict[str, object]:
    """The runtime-spec's state of a container (what `state` prints and hooks read)."""
    state: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "id": record.id,
        "status": status,
        "pid": 0 if status == "stopped" else record.pid,
        "bundle": record.bundle,
        "rootfs": record.rootfs,
        "created": record.created,
        "owner": "",
    }
    if record.annotations:
        state["annotations"] = record.annotations
    return state


def now() -> str:
    """RFC 3339 with nanoseconds, as runc writes `created`."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None if there is no such (living) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # exited, not yet reaped by its parent
        return None
    return int(fields[19])


class Store:
    """The state directory: one subdirectory per container."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)
        self._held: list[int] = []  # locks of the directories this process reserved

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, names.validate_id(container_id))

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), EXEC_FIFO)

    def reserve(self, container_id: str) -> str:
        """Claim the id: its directory is made, or the id is taken. The exec fifo may be
        written by anyone (the container's init opens it after taking the payload's
        identity), read only by root: only a reader starts the container, as runc's."""
        path = self.dir(container_id)
        try:
            os.makedirs(self.root, 0o711, exist_ok=True)
        except OSError as e:  # FileExistsError too: a file of that name
            raise self._unusable(e) from None
        try:
            _check_safe(self.root)
            claim = self._claim()
            try:
                os.mkdir(path, 0o711)
                # Held until this process ends: `delete -f` and `gc` leave a create in progress
                # alone, and take what one killed midway left (a dead process holds no lock).
                self._held.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
                fcntl.flock(self._held[-1], fcntl.LOCK_EX)
            finally:
                os.close(claim)
        except FileExistsError:
            raise ContainerExists(f"container with id {container_id} already exists") from None
        except OSError as e:
            raise PyctrError(f"cannot make the state directory {path}: {e.strerror}") from None
        fifo = os.path.join(path, EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # past the umask
        return path

    def save(self, record: Record) -> None:
        path = os.path.join(self.dir(record.id), STATE_FILE)
        tmp = f"{path}.tmp"
        import json  # create's path has it already (config.json)

        with open(tmp, "w") as f:
            json.dump(record.as_json(), f)
        os.rename(tmp, path)  # readers see the old file or the new one, never half of one

    def load(self, container_id: str) -> Record:
        directory = self.dir(container_id)
        path = os.path.join(directory, STATE_FILE)
        try:
            for checked in (self.root, directory):
                _check_safe(checked)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NoSuchContainer(container_id) from None
        except OSError as e:
            raise UnsafeState(
                f"state of container {container_id} cannot be read: {path}: {e.strerror}"
            ) from None
        with os.fdopen(fd) as f:
            _check_safe(path, os.fstat(fd))
            try:
                record = Record.from_json(loads(f.read()))
            except (ValueError, RecursionError) as e:
                raise DamagedState(
                    f"state of container {container_id} is damaged ({path}: {e}): `delete -f` removes it"
                ) from None
        if record.id != container_id or not named_for(record.unit, container_id):
            raise UnsafeState(
                f"state of container {container_id} names unit {record.unit!r}, "
                "not one named for the container: refusing to use it"
            )
        group = record.cgroup
        if group and (
            not group.startswith("/")
            or os.path.normpath(group) != group
            or os.path.basename(group) != record.unit
        ):
            raise UnsafeState(
                f"state of container {container_id} names cgroup {group!r}, "
                "not its unit's: refusing to use it"
            )
        return record

    def _claim(self) -> int:
        """The root's lock, held from a directory made to its own lock taken: being_created
        waits for it. Closing the fd releases it."""
        fd = os.open(os.path.join(self.root, CLAIM_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def being_created(self, container_id: str) -> bool:
        """Does a live pyctr still hold the container's directory, creating it?"""
        claim = self._claim()
        try:
            fd = os.open(self.dir(container_id), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        finally:
            os.close(claim)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def unfinished(self) -> list[str]:
        """Directories with no state that can be read, and no pyctr creating them."""
        return [e for e in self._entries() if self._unreadable(e) and not self.being_created(e)]

    def _unreadable(self, entry: str) -> bool:
        try:
            self.load(entry)
        except (NoSuchContainer, DamagedState):
            return True
        except PyctrError:
            pass  # a bad name, or unsafe state: not pyctr's to touch
        return False

    def ids(self) -> list[str]:
        return [e for e in self._entries() if os.path.exists(os.path.join(self.root, e, STATE_FILE))]

    def _unusable(self, e: OSError) -> PyctrError:
        return PyctrError(f"cannot use {self.root} as the state directory (--root): {e.strerror}")

    def _entries(self) -> list[str]:
        try:
            return sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise self._unusable(e) from None

    def remove(self, container_id: str) -> None:
        path = self.dir(container_id)
        for name in (STATE_FILE, f"{STATE_FILE}.tmp", EXEC_FIFO, "console.sock"):
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def status(self, record: Record, frozen: bool = False) -> str:
        if not alive(record):
            return "stopped"
        if os.path.exists(self.fifo(record.id)):
            return "created"
        return "paused" if frozen else "running"


def alive(record: Record) -> bool:
    """Is the recorded process the container's init still: the same start time, in the
    container's unit (a pid is reused; a state file could name anyone's)."""
    if record.pid <= 0 or not record.unit or process_start_time(record.pid) != record.start_time:
        return False
    try:
        group = cgroups.unit_cgroup(cgroups.of_pid(record.pid)) or ""
    except (FileNotFoundError, ProcessLookupError):
        return False
    return record.unit in group.split("/")


class _Decoding:
    """What json's C scanner reads from its decoder: json.loads's defaults."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int, parse_constant = float, int, float  # float("-Infinity") and all


def loads(text: str) -> object:
    """json.loads by json's own C scanner, without importing json: json.decoder imports re,
    and re enum, ~6 ms on every verb that reads a container's state (start, state, kill,
    delete). A ValueError for text that is not one JSON value (json raises its subclass)."""
    import _json

    text = text.strip(" \t\n\r")
    try:
        # (typeshed types the context as a scanner; the C code reads only these attributes)
        value, end = _json.make_scanner(_Decoding())(text, 0)  # type: ignore[arg-type]
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError(f"extra data at character {end}")
    return value


def _check_safe(path: str, st: os.stat_result | None = None) -> None:
    """Only pyctr's own user (root) may have made or changed what pyctr acts on."""
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        problem = "a symlink"
    elif st.st_uid != os.geteuid():
        problem = f"owned by uid {st.st_uid}"
    elif st.st_mode & 0o022:
        problem = f"writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    else:
        return
    raise UnsafeState(f"state {path} is {problem}, not root's alone: refusing to use it")


def named_for(unit: str, container_id: str) -> bool:
    """A container's unit carries its id: pyctr-ID.scope, or PREFIX-ID.scope from a cgroupsPath."""
    return unit == f"{container_id}.scope" or unit.endswith(f"-{container_id}.scope")
