"""Lint as a test: ruff (lint rules and format) and mypy --strict, from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
RUFF = CHECKOUT / ".venv-tools/bin/ruff"


def run(*argv: str) -> None:
    result = subprocess.run(argv, cwd=CHECKOUT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def ruff() -> str:
    if not RUFF.exists():
        pytest.fail("ruff is not installed: run tools/install-deps test", pytrace=False)
    return str(RUFF)


def test_ruff_lint(ruff: str) -> None:
    run(ruff, "check", ".")


def test_ruff_format(ruff: str) -> None:
    run(ruff, "format", "--check", ".")


def test_mypy_strict() -> None:
    mypy = shutil.which("mypy")
    if mypy is None:
        pytest.fail("mypy is not installed: run tools/install-deps test", pytrace=False)
    run(mypy)
