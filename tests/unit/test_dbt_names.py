"""dbt names PostgreSQL must take: a unit test runs in a relation named after it (at most 63 characters)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

MODELS = Path(__file__).resolve().parents[2] / "dbt_project" / "models"
POSTGRES_NAME_LIMIT = 63


def unit_test_names() -> list[str]:
    return [test["name"] for path in sorted(MODELS.rglob("*.yml"))
            for test in (yaml.safe_load(path.read_text()) or {}).get("unit_tests", [])]


def test_the_project_has_unit_tests() -> None:
    assert len(unit_test_names()) >= 20


@pytest.mark.parametrize("name", unit_test_names())
def test_a_unit_tests_name_fits_a_postgresql_relation_name(name: str) -> None:
    assert len(name) <= POSTGRES_NAME_LIMIT, f"{name} has {len(name)} characters"
