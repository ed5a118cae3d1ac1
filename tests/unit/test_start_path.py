"""The start path of `pyctr run` imports only cheap modules (see pyctr_systemd/cli/run.py)."""

import subprocess
import sys

from tests.cli import CHECKOUT

# Each costs milliseconds on every container start; none is needed there.
EXPENSIVE = ["click", "dbus", "re", "typing", "dataclasses", "inspect", "enum", "signal", "socket",
             "subprocess", "logging", "json", "jinja2", "pystemd", "warnings"]  # fmt: skip


def loaded(*modules: str) -> set[str]:
    """What importing `modules` loads, in -I -S: no site, no user packages, only what pyctr
    itself pulls in."""
    code = (
        f"import sys; sys.path[:0] = [{str(CHECKOUT)!r}, '/usr/lib/python3/dist-packages']; "
        f"import {', '.join(modules)}; print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_start_path_imports_nothing_expensive() -> None:
    assert sorted(loaded("pyctr_systemd.cli", "pyctr_systemd.container") & set(EXPENSIVE)) == []


def test_runcs_hot_verbs_import_nothing_expensive() -> None:
    # What an engine runs for every container; start and state need no D-Bus, so no bindings.
    verbs = ("pyctr_systemd.cli", "pyctr_systemd.cli.verbs", "pyctr_systemd.oci.lifecycle")
    for verb in ("start", "state"):
        modules = loaded(*verbs, f"pyctr_systemd.oci.{verb}", "pyctr_systemd.freezer")
        assert sorted(modules & {*EXPENSIVE, "_dbus_bindings"}) == [], verb
    for verb in ("kill", "delete"):  # create reads config.json with json itself
        modules = loaded(*verbs, f"pyctr_systemd.oci.{verb}")
        assert sorted(modules & {*EXPENSIVE, "pyctr_systemd.init.sync", "ctypes"}) == [], verb  # no launcher


def test_the_launcher_imports_nothing_expensive() -> None:
    # The container's first process re-executes itself from a sealed interpreter and imports
    # pyctr_systemd.init.main afresh (-I -S, as pyctr_systemd.init.sync runs it), on every start.
    modules = loaded("pyctr_systemd.init.main")
    assert sorted(modules & set(EXPENSIVE)) == []
    assert {"seccomp", "pyctr_systemd.seccomp_profile"} & modules == set()  # pyctr compiles the filter
