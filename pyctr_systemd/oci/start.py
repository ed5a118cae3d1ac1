"""start: release a created container's payload by opening its exec fifo."""

from __future__ import annotations

import os
import select

from pyctr_systemd import hooks, log
from pyctr_systemd.oci import lifecycle
from pyctr_systemd.state import InvalidState, Record, Store, oci_state


def start(store: Store, container_id: str) -> None:
    record = store.load(container_id)
    # running and paused are refused alike: no look at the freezer on this hot path
    lifecycle.check("start", record, store.status(record))
    try:
        pidfd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        raise InvalidState(f"container {container_id} ended before it could start") from None
    try:
        _release(store.fifo(container_id), pidfd, container_id)
    finally:
        os.close(pidfd)
    run_recorded_hooks(record, "poststart", "running")


def run_recorded_hooks(record: Record, kind: str, status: str) -> None:
    """poststart and poststop: their failures are warnings (runtime-spec), not errors."""
    for hook in record.hooks.get(kind, []):
        try:
            hooks.run(hooks.from_json(hook), oci_state(record, status))
        except hooks.HookError as e:
            log.warning(f"{kind} {e}")


def _release(path: str, pidfd: int, container_id: str) -> None:
    """Open the exec fifo (the container's init waits for a reader) and read its byte.

    The path goes at once: whoever opened it first starts the container, and
    the status is "running" from then on (the init holds the fifo open itself).
    """
    try:
        fifo = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InvalidState(f"container {container_id} is already started") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        os.close(fifo)
        raise InvalidState(f"container {container_id} is already started") from None
    try:
        poller = select.poll()
        poller.register(fifo, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if fifo in ready and ready[fifo] & select.POLLIN and os.read(fifo, 1):
                return
            if pidfd in ready:
                raise InvalidState(f"container {container_id} ended before it could start")
            if fifo in ready:  # a writer came and went without a word: not our init
                poller.unregister(fifo)
    finally:
        os.close(fifo)
