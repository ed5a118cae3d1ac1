"""A container's status and what each verb may do in it, as one table.

The statuses are the runtime-spec's (creating is never seen: a create holds its
directory locked until the state is saved). A verb asked of a container in a
status it does not act on is refused in runc's words, which engines match
(containerd's shim, for one, treats "container not running" as done).
"""

from __future__ import annotations

from pyctr_systemd.state import InvalidState, Record, Store

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"
LIVE = (CREATED, RUNNING, PAUSED)

# verb -> the statuses it acts on; runc's refusals for the others.
ALLOWED: dict[str, tuple[str, ...]] = {
    "start": (CREATED,),
    "kill": LIVE,
    "pause": (RUNNING,),
    "resume": (PAUSED,),
    "exec": (RUNNING,),
    "ps": LIVE,
    "update": LIVE,
    "delete": (CREATED, STOPPED),
}
_REFUSALS: dict[tuple[str, str], str] = {
    ("start", RUNNING): "cannot start an already running container",
    ("start", PAUSED): "cannot start an already running container",
    ("start", STOPPED): "cannot start a container that has stopped",
    ("resume", CREATED): "container {id} is not paused",
    ("resume", RUNNING): "container {id} is not paused",
    ("exec", CREATED): "cannot exec in container {id}: it is not running",
    ("exec", PAUSED): "cannot exec in a paused container",
    ("delete", RUNNING): "cannot delete container {id} that is not stopped: running",
    ("delete", PAUSED): "cannot delete container {id} that is not stopped: paused",
}
_NOT_RUNNING = "{id}: container not running"


def status(store: Store, record: Record) -> str:
    """created, running, paused or stopped: one look at the process (whether it lives, where)."""
    from pyctr_systemd import freezer  # start has no use for it

    found = store.status(record)
    return PAUSED if found == RUNNING and freezer.frozen(record.pid) else found


def check(verb: str, record: Record, found: str) -> None:
    """InvalidState, in runc's words, if `verb` does not act on a container that is `found`."""
    if found not in ALLOWED[verb]:
        words = _REFUSALS.get((verb, found), _NOT_RUNNING)
        raise InvalidState(words.format(id=record.id))


def loaded(store: Store, container_id: str, verb: str) -> tuple[Record, str]:
    """The container's record and status, once `verb` is allowed in it."""
    record = store.load(container_id)
    found = status(store, record)
    check(verb, record, found)
    return record, found
