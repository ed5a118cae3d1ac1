import pytest

from tests.vm import lane


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    lane.add_twins(items)
