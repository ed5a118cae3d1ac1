"""`pyctr spec`: templates/config.json.j2 renders what runc 1.1.5's `runc spec` writes.

tests/unit/data holds runc's own output, made once with Debian's runc 1.1.5 as root
(in an empty directory: `runc spec`, `runc spec --rootless`), so runc need not be
installed here. The rootless mappings are of the caller's effective ids: 0 there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jinja2
import pytest

from pyctr_systemd import bundle, seccomp_profile, spec, templates
from pyctr_systemd.errors import InvalidArgument, PyctrError

DATA = Path(__file__).resolve().parent / "data"
RUNC = {False: DATA / "runc-spec.json", True: DATA / "runc-spec-rootless.json"}


def runc_spec(rootless: bool) -> Any:
    return json.loads(RUNC[rootless].read_text())


def pyctr_spec(rootless: bool) -> Any:
    """runc's, with pyctr's default seccomp profile."""
    config = runc_spec(rootless)
    config["linux"]["seccomp"] = seccomp_profile.default_profile(bundle.SPEC_CAPABILITIES, os.uname().machine)
    return config


@pytest.mark.parametrize("rootless", [False, True], ids=["default", "rootless"])
def test_rendering_is_json_equal_to_runc_spec_but_for_seccomp(rootless: bool) -> None:
    written = json.loads(bundle.render_spec(rootless))
    profile = written["linux"].pop("seccomp")
    assert written == runc_spec(rootless)
    assert profile == seccomp_profile.default_profile(bundle.SPEC_CAPABILITIES, os.uname().machine)


@pytest.mark.parametrize("rootless", [False, True], ids=["default", "rootless"])
def test_rendering_is_byte_identical_to_runc_spec(rootless: bool) -> None:
    # Tabs, key order, no final newline: as runc writes it.
    assert bundle.render_spec(rootless, seccomp=False) == RUNC[rootless].read_text()


def test_the_default_profile_is_in_runcs_layout() -> None:
    text = bundle.render_spec(False)
    assert text.startswith(RUNC[False].read_text()[: -len("\n\t\t]\n\t}\n}")])
    assert '\t\t"seccomp": {\n\t\t\t"defaultAction": "SCMP_ACT_ERRNO",' in text
    assert text.endswith("\n\t\t}\n\t}\n}")


def test_the_spec_capabilities_are_runcs() -> None:
    names = set(runc_spec(False)["process"]["capabilities"]["bounding"])
    assert {spec.CAPABILITIES_BY_NUMBER[n] for n in bundle.SPEC_CAPABILITIES} == names


def test_rootless_maps_the_given_host_ids_to_root() -> None:
    linux = json.loads(bundle.render_spec(True, host_uid=1000, host_gid=1001))["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]


def test_a_missing_value_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError):
        templates.render("config.json.j2")


def test_a_missing_template_is_a_pyctr_error() -> None:
    with pytest.raises(PyctrError, match="template no-such.j2 not found"):
        templates.render("no-such.j2")


def test_templates_are_found_in_the_checkout_first() -> None:
    assert templates.search_path() == [
        str(Path(__file__).resolve().parents[2] / "templates"),
        "/usr/share/pyctr-systemd/templates",
    ]


@pytest.mark.parametrize("rootless", [False, True], ids=["default", "rootless"])
def test_write_spec_writes_config_json(tmp_path: Path, rootless: bool) -> None:
    written = bundle.write_spec(str(tmp_path), rootless)
    assert written == str(tmp_path / "config.json")
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary file left
    config = json.loads(Path(written).read_text())
    expected = pyctr_spec(rootless)
    if rootless:
        expected["linux"]["uidMappings"][0]["hostID"] = os.geteuid()
        expected["linux"]["gidMappings"][0]["hostID"] = os.getegid()
    assert config == expected


def test_write_spec_file_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        written = bundle.write_spec(str(tmp_path), False)
    finally:
        os.umask(old)
    assert os.stat(written).st_mode & 0o777 == 0o640


def test_write_spec_refuses_an_existing_config_json(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("mine\n")
    os.utime(config, (1_000_000, 1_000_000))
    with pytest.raises(InvalidArgument, match=r"^File config.json exists. Remove it first$"):
        bundle.write_spec(str(tmp_path), False)
    assert config.read_text() == "mine\n"
    assert config.stat().st_mtime == 1_000_000
    assert os.listdir(tmp_path) == ["config.json"]


def test_write_spec_refuses_a_dangling_config_json_symlink(tmp_path: Path) -> None:
    (tmp_path / "config.json").symlink_to("elsewhere.json")
    with pytest.raises(InvalidArgument, match="File config.json exists"):
        bundle.write_spec(str(tmp_path), True)
    assert sorted(os.listdir(tmp_path)) == ["config.json"]


def test_write_spec_refuses_a_missing_bundle(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle"
    with pytest.raises(InvalidArgument, match="does not exist"):
        bundle.write_spec(str(missing), False)
    assert not missing.exists()


def test_write_spec_refuses_a_bundle_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(InvalidArgument, match="not a directory"):
        bundle.write_spec(str(not_a_dir), False)


def test_write_spec_refuses_a_config_json_made_while_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_text("theirs\n")
        link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(InvalidArgument, match="File config.json exists"):
        bundle.write_spec(str(tmp_path), False)
    assert (tmp_path / "config.json").read_text() == "theirs\n"
    assert os.listdir(tmp_path) == ["config.json"]


def test_write_spec_without_hard_links_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    written = bundle.write_spec(str(tmp_path), False)
    assert json.loads(Path(written).read_text()) == pyctr_spec(False)
    assert os.listdir(tmp_path) == ["config.json"]
