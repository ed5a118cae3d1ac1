"""The running machine, as the lifecycle sees it (pyctr_systemd.effects.Host):
its cgroup layout and the launcher of a container's first process. The launcher
and the OCI counters are imported where used: delete, kill and gc need neither."""

from __future__ import annotations

import os

from pyctr_systemd import cgroups, hierarchies

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyctr_systemd.init.launch import LaunchSpec
    from pyctr_systemd.init.sync import Child
    from pyctr_systemd.oom import OomWatch


class Host:
    def unified(self) -> bool:
        return cgroups.is_unified()

    def launch(
        self, spec: LaunchSpec, place: Callable[[int], None], before_go: Callable[[int], None] | None = None
    ) -> Child:
        from pyctr_systemd.init import sync

        return sync.launch_created(spec, place, before_go)

    def cgroups_of(self, pid: int) -> dict[str, str]:
        return cgroups.of_pid(pid)

    def join(self, pid: int, paths: dict[str, str] | None = None, cpus: str | None = None,
             mems: str | None = None) -> None:  # fmt: skip
        hierarchies.join(pid, paths, cpus, mems)

    def remove_groups(self, group: str) -> None:
        hierarchies.remove(group)

    def remove_orphans(self, gone: Callable[[str], bool], settled: float) -> list[str]:
        return hierarchies.remove_orphans(gone, settled)

    def spare_launcher(self, spec: LaunchSpec) -> None:
        """Until it hands over and exits, this process is charged to the container's
        memory: if the payload runs out early, the kernel must kill the payload (a
        Result=oom-kill of the unit), not the launcher (a puzzling Result=signal).
        The container gets this process's own OOM score back. Lowering the score
        needs CAP_SYS_RESOURCE; without it (root of some containers) pyctr starts
        unshielded."""
        with open("/proc/self/oom_score_adj", "r+") as f:
            if spec.oom_score_adj is None:
                spec.oom_score_adj = int(f.read())
            try:
                os.pwrite(f.fileno(), b"-1000", 0)
            except PermissionError:
                pass

    def out_of_memory(self, paths: dict[str, str]) -> bool:
        from pyctr_systemd import oom

        return oom.struck(paths)

    def watch_oom(self, paths: dict[str, str]) -> OomWatch:
        from pyctr_systemd import oom

        return oom.OomWatch(paths)


HOST = Host()
