"""What is mounted, for tests and test tools that must leave nothing mounted."""

from __future__ import annotations

from pathlib import Path


def mountpoints() -> set[str]:
    """The mount points of this process's mount namespace."""
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
