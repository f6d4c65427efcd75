"""Header checks: each problem is named with the file, and nothing is read past the header."""

from pathlib import Path

import pytest

from benefitflow.core.errors import IntakeError
from benefitflow.workflows.inputs import FileSpec, read_header

SPEC = FileSpec(kind="demo", required_columns=("code", "label"), optional_columns=("note",))


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "people.csv"
    path.write_bytes(content)
    return path


def test_a_good_header_with_optional_column(tmp_path: Path) -> None:
    assert read_header(write(tmp_path, b"code,label,note\nA,b,c\n"), SPEC, "upload.csv") == ["code", "label", "note"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    assert read_header(write(tmp_path, b"\xef\xbb\xbfcode,label\nA,b\n"), SPEC, "upload.csv") == ["code", "label"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "people.csv is empty"),
        (b"\n\n", "people.csv is empty"),
        (b"code;label\nA;b\n", "separated by semicolon"),
        (b"code\tlabel\nA\tb\n", "separated by tab"),
        (b"code,label,label\n", "duplicated column\\(s\\): label"),
        (b"code\n", "missing required column\\(s\\): label"),
        (b"code,label,evil\n", "unknown column\\(s\\): evil"),
        (b"code,,label\n", "column\\(s\\) 2 have no name"),
        (b"c\xf3de,label\n", "not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a CSV text file|not UTF-8"),
    ],
)
def test_bad_headers_are_refused_with_the_file_named(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(IntakeError, match=message) as error:
        read_header(write(tmp_path, content), SPEC, "people.csv")
    assert "people.csv" in str(error.value)


def test_extra_columns_pass_when_the_spec_allows_them(tmp_path: Path) -> None:
    spec = FileSpec(kind="demo", required_columns=("code",), allow_extra_columns=True)
    assert read_header(write(tmp_path, b"code,anything\n"), spec, "upload.csv") == ["code", "anything"]
