"""Did the OOM killer strike inside the container's cgroup?

A payload killed by SIGKILL may have been OOM-killed or just killed; only the
memory cgroup knows. systemd removes the cgroup as soon as the container's last
process exits, so reading the counters once at the end races with it. Instead
we are told while the cgroup exists:
- cgroup v2: memory.events changes are signalled to poll(2) as POLLPRI;
- cgroup v1: an eventfd registered on memory.oom_control via
  cgroup.event_control fires when the group hits OOM (cgroup-v1/memory.txt §9).
  That write registers a listener; it sets no limit.
Both are read through descriptors opened up front: once the cgroup is gone
the read fails (ENODEV) instead of reporting stale or foreign numbers.
"""

from __future__ import annotations

import os
import select

from pyctr_systemd import cgroups

# Counters that mean "this cgroup ran out of memory" in v1's memory.oom_control
# (under_oom is a state, oom_kill a count) and in v2's memory.events.
_SIGNS = ("under_oom", "oom", "oom_kill")


def oom_seen(text: str) -> bool:
    """True if memory.oom_control (v1) or memory.events (v2) shows an OOM."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in _SIGNS and value.strip() not in ("", "0"):
            return True
    return False


class OomWatch:
    """Watches the memory cgroup of one process from the parent's poll loop."""

    def __init__(self, paths: dict[str, str]) -> None:
        """Watch the memory cgroup of the process whose cgroups are `paths` (cgroups.of_pid)."""
        self.seen = False
        self.fd, self.events = -1, 0  # what poll watches, and for what
        self._counter = -1  # the counters file
        self._eventfd = -1
        counter = _counters(paths)
        if counter is None:
            return  # no memory controller: nothing to watch
        v2 = counter.endswith("memory.events")
        directory = os.path.dirname(counter)
        try:
            self._counter = os.open(counter, os.O_RDONLY | os.O_CLOEXEC)
            if v2:
                self.fd, self.events = self._counter, select.POLLPRI
            else:
                # (mypy 1.0's typeshed lacks os.eventfd, new in Python 3.10)
                self._eventfd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)  # type: ignore[attr-defined]
                with open(os.path.join(directory, "cgroup.event_control"), "w") as f:
                    f.write(f"{self._eventfd} {self._counter}")
                self.fd, self.events = self._eventfd, select.POLLIN
        except OSError:
            # Not watchable (no memory controller enabled here): the container
            # still runs; only an OOM kill would go unnamed.
            self.close()
            return
        self.check()

    def check(self) -> bool:
        """Read the counters now; False once the cgroup is gone."""
        notified = False
        if self._eventfd >= 0:
            try:
                notified = os.eventfd_read(self._eventfd) > 0  # type: ignore[attr-defined]
            except BlockingIOError:
                pass
        if self._counter < 0:
            return False
        try:
            text = os.pread(self._counter, 4096, 0).decode()
        except OSError:  # ENODEV: the cgroup is gone (v1 signals its removal too)
            return False
        # v1 notifies before the kill and clears under_oom before counting it
        # (mem_cgroup_oom()), so a notification while the cgroup exists is the news.
        self.seen = self.seen or notified or oom_seen(text)
        return True

    def close(self) -> None:
        for fd in (self._counter, self._eventfd):
            if fd >= 0:
                os.close(fd)
        self._counter = self._eventfd = self.fd = -1


def struck(paths: dict[str, str]) -> bool:
    """Has the memory cgroup of these paths (cgroups.of_pid) seen an OOM, while it exists?"""
    counter = _counters(paths)
    try:
        return counter is not None and oom_seen(cgroups.read(counter))
    except OSError:
        return False


def _counters(paths: dict[str, str]) -> str | None:
    """The memory cgroup's OOM counters: memory.events (v2) or memory.oom_control (v1)."""
    directory = cgroups.controller_dir("memory", paths)
    if directory is None:
        return None
    v2 = os.path.join(directory, "memory.events")
    return v2 if os.path.exists(v2) else os.path.join(directory, "memory.oom_control")
