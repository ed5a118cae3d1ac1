import pytest

from pyctr_systemd.oom import oom_seen


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", False),
        ("oom_kill_disable 0\nunder_oom 1\noom_kill 0\n", True),
        ("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", True),
        ("low 0\nhigh 0\nmax 12\noom 0\noom_kill 0\noom_group_kill 0\n", False),
        ("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n", True),
        ("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n", True),
        ("oom_kill_disable 1\n", False),
        ("", False),
    ],
)
def test_oom_seen(text: str, seen: bool) -> None:
    assert oom_seen(text) is seen
