import pytest

from pyctr_systemd import names
from pyctr_systemd.errors import InvalidArgument


@pytest.mark.parametrize("name", ["a", "web", "web-1", "db_2.prod", "0abc", "A" * 128, "8f3c2e1a9b7d"])
def test_valid_names(name: str) -> None:
    assert names.validate(name) == name


@pytest.mark.parametrize(
    "name", ["", "-x", ".x", "_x", "a b", "a/b", "a@b", "a:b", "a\\b", "é", "a\n", "A" * 129, "x*", "../x"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid container name"):
        names.validate(name)


def test_generated_names_are_valid_and_distinct() -> None:
    generated = {names.generate() for _ in range(100)}
    assert len(generated) == 100
    for name in generated:
        assert names.validate(name) == name
        assert len(name) == 12


def test_unit_and_hostname() -> None:
    assert names.scope_unit("web-1") == "pyctr-web-1.scope"
    assert names.default_hostname("x" * 100) == "x" * 64
    assert names.default_hostname("web") == "web"
