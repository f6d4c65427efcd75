"""The row checks' SQL files: named statements, fragments included once, every file beside its module loads."""

from pathlib import Path

import pytest

from benefitflow.workflows import row_checks

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "benefitflow"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "module.sql"
    path.write_text(text)
    return path


def test_statements_are_named_and_fragments_included_without_their_comments(tmp_path: Path) -> None:
    path = write(tmp_path, "-- the file's header\n\n-- name: tally\n-- why the tally\nSELECT 1 AS n\n\n"
                           "-- name: check\nSELECT {upload}, n FROM ({@tally}) t\n")
    found = row_checks.statements(path)
    assert list(found) == ["tally", "check"]
    assert found["check"] == "SELECT {upload}, n FROM (SELECT 1 AS n) t\n"
    assert found["tally"].startswith("-- why the tally\n")


@pytest.mark.parametrize(("text", "error"), [
    ("-- name: a\nSELECT ({@missing})\n", "no statement missing"),
    ("-- name: a\nSELECT ({@b})\n-- name: b\nSELECT ({@a})\n", "includes itself"),
])
def test_a_wrong_include_is_refused_when_the_file_loads(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises((KeyError, ValueError), match=error):
        row_checks.statements(write(tmp_path, text))


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.glob("*/*.sql") if p.parent.name != "sql"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_checks_file_beside_a_module_loads(path: Path) -> None:
    assert path.with_suffix(".py").exists()
    found = row_checks.statements(path)
    assert found and all(statement.strip() for statement in found.values())
    assert not any("{@" in statement for statement in found.values())
