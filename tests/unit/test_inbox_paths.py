"""Paths from trigger forms stay inside the inbox."""

from pathlib import Path

import pytest

from benefitflow.intake import IntakeError, resolve_in_inbox


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    box = tmp_path / "inbox"
    (box / "sub").mkdir(parents=True)
    (box / "ok.csv").write_text("a\n1\n")
    (box / "sub" / "nested.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("a\n1\n")
    (box / "link.csv").symlink_to(tmp_path / "secret.csv")
    return box


def test_a_file_in_the_inbox_is_accepted_by_name_or_subpath(inbox: Path) -> None:
    assert resolve_in_inbox("ok.csv", inbox) == inbox / "ok.csv"
    assert resolve_in_inbox("sub/nested.csv", inbox) == inbox / "sub" / "nested.csv"
    assert resolve_in_inbox(str(inbox / "ok.csv"), inbox) == inbox / "ok.csv"


@pytest.mark.parametrize(
    "raw",
    ["../secret.csv", "sub/../../secret.csv", "/etc/passwd", "link.csv", "/", ".."],
)
def test_paths_leaving_the_inbox_are_refused(inbox: Path, raw: str) -> None:
    with pytest.raises(IntakeError, match="outside the inbox"):
        resolve_in_inbox(raw, inbox)


@pytest.mark.parametrize("raw", ["", "   ", "missing.csv", "sub"])
def test_missing_or_empty_names_are_refused(inbox: Path, raw: str) -> None:
    with pytest.raises(IntakeError):
        resolve_in_inbox(raw, inbox)


def test_a_nul_byte_in_the_name_is_refused(inbox: Path) -> None:
    with pytest.raises(IntakeError, match="NUL"):
        resolve_in_inbox("ok.csv\x00.txt", inbox)
