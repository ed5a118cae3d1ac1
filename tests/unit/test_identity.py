"""The launcher's pure parts of identity: HOME from an image's /etc/passwd."""

from __future__ import annotations

import pytest

from pyctr_systemd.init.identity import home_in

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nbroken:0\n\napp:x:1000:1000:App,,,:/home/app:/bin/sh\nx:x:1000:1:::"


@pytest.mark.parametrize(("uid", "home"), [(0, "/root"), (1000, "/home/app"), (5, ""), (1, "")])
def test_home_is_the_first_entry_of_the_uid(uid: int, home: str) -> None:
    assert home_in(PASSWD, uid) == home


def test_no_passwd_entries() -> None:
    assert home_in(b"", 0) == ""
    assert home_in(b"\x00\xff:::::", 0) == ""
