"""The synthetic registry file: its shape, household rules, and bad rows counted exactly as written."""

import csv
import re
import unicodedata
from collections import defaultdict
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from benefitflow_dev.synthetic import (
    DISABILITY_LEVELS,
    DUPLICATE_KINDS,
    EDUCATION_LEVELS,
    FEMALE_FIRST_NAMES,
    HEADER,
    LAST_NAMES,
    LOCATIONS,
    MALE_FIRST_NAMES,
    GeneratedFile,
    write_registry_file,
)

TODAY = date(2026, 11, 24)
ROWS = 2_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFile:
    return write_registry_file(tmp_path_factory.mktemp("synthetic") / "registry.csv", ROWS, today=TODAY)


@pytest.fixture(scope="module")
def rows(generated: GeneratedFile) -> list[dict[str, str]]:
    with generated.path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def age(dob: date) -> int:
    return TODAY.year - dob.year - ((TODAY.month, TODAY.day) < (dob.month, dob.day))


def broken_fields(row: dict[str, str]) -> list[str]:
    """The fields of a row that break the registry's rules."""
    broken = []
    try:
        dob = date.fromisoformat(row["dob"])
        if dob > TODAY or age(dob) > 110:
            broken.append("dob")
    except ValueError:
        broken.append("dob")
    if row["educated_level"] not in EDUCATION_LEVELS:
        broken.append("educated_level")
    if not row["number_of_children"].isdigit() or int(row["number_of_children"]) > 12:
        broken.append("number_of_children")
    if not row["first_name"]:
        broken.append("first_name")
    if row["income"]:
        try:
            if not Decimal("0") <= Decimal(row["income"]) <= Decimal("50000"):
                broken.append("income")
        except InvalidOperation:
            broken.append("income")
    if row["sex"] not in ("F", "M", "O"):
        broken.append("sex")
    return broken


def letters_apart(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True)) if len(a) == len(b) else 99


def without_accents(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def differs_as_planted(row: dict[str, str], original: dict[str, str], kind: str) -> bool:
    """The duplicate differs from its original the way its kind says, and in nothing else that identifies."""
    names = (row["first_name"], row["last_name"]), (original["first_name"], original["last_name"])
    same_names = names[0] == names[1]
    one_name_off = sorted(letters_apart(a, b) for a, b in zip(*names, strict=True)) == [0, 1]
    transposed = any(sorted(a) == sorted(b) and letters_apart(a, b) == 2 for a, b in zip(*names, strict=True)) \
        and sum(a != b for a, b in zip(*names, strict=True)) == 1
    dates = row["dob"].replace("-", ""), original["dob"].replace("-", "")
    if row["sex"] != original["sex"] or (row["national_id"] and row["national_id"] == original["national_id"]):
        return False
    if kind in ("typo", "same_phone"):
        return one_name_off and dates[0] == dates[1] and (kind == "typo" or row["phone"] == original["phone"] != "")
    if kind == "transposed":
        return (transposed or one_name_off) and dates[0] == dates[1]
    if kind == "day_month_swapped":
        swapped = dates[0] == dates[1][:4] + dates[1][6:] + dates[1][4:6] and dates[0] != dates[1]
        return (swapped and same_names) or (dates[0] == dates[1] and one_name_off)
    if kind == "dob_digit":
        return (letters_apart(*dates) == 1 and same_names) or (dates[0] == dates[1] and one_name_off)
    if kind == "middle_name":
        return row["first_name"].startswith(original["first_name"] + " ") and row["last_name"] == original["last_name"]
    if kind == "moved":
        return ((without_accents(original["first_name"]), without_accents(original["last_name"])) == names[0]
                and dates[0] == dates[1] and row["location_code"] != original["location_code"])
    return False


def test_header_and_row_count(generated: GeneratedFile, rows: list[dict[str, str]]) -> None:
    with generated.path.open(encoding="utf-8", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == HEADER
    assert generated.rows == len(rows) == ROWS
    assert b"\r" not in generated.path.read_bytes()


def test_households_have_exactly_one_head_who_is_the_primary_recipient(
        generated: GeneratedFile, rows: list[dict[str, str]]) -> None:
    households: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        households[row["group_code"]].append(row)
    assert len(households) == generated.households
    for code, members in households.items():
        assert re.fullmatch(r"[A-Z0-9]{8}", code)
        assert 1 <= len(members) <= 7
        heads = [member for member in members if member["individual_role"] == "HEAD"]
        assert len(heads) == 1 and heads[0]["recipient_info"] == "1"
        assert [member["recipient_info"] for member in members].count("1") == 1
        assert [member["recipient_info"] for member in members].count("2") <= 1
        assert sum(member["individual_role"] == "SPOUSE" for member in members) <= 1
        assert len({(member["location_code"], member["location_name"], member["region"]) for member in members}) == 1
        assert 18 <= age(date.fromisoformat(heads[0]["dob"])) <= 85
    secondary = sum("2" in {member["recipient_info"] for member in members} for members in households.values())
    assert 0.1 < secondary / len(households) < 0.3


def test_invalid_rows_are_counted_exactly_and_broken_in_one_field(
        generated: GeneratedFile, rows: list[dict[str, str]]) -> None:
    broken = [fields for fields in map(broken_fields, rows) if fields]
    assert len(broken) == generated.invalid_rows == ROWS * 2 // 100
    assert all(len(fields) == 1 for fields in broken)
    assert {fields[0] for fields in broken} == {"dob", "educated_level", "number_of_children", "first_name",
                                                "income", "sex"}
    assert all(row["individual_role"] != "HEAD" for row in rows if broken_fields(row))


def test_duplicate_national_ids_are_counted_exactly(generated: GeneratedFile, rows: list[dict[str, str]]) -> None:
    seen: set[str] = set()
    repeats = 0
    for row in rows:
        national_id = row["national_id"]
        if national_id:
            assert re.fullmatch(r"[A-Z0-9][A-Z0-9-]{4,19}", national_id)
            repeats += national_id in seen
            assert national_id not in seen or row["individual_role"] != "HEAD"
            seen.add(national_id)
    assert repeats == generated.duplicate_rows == ROWS // 100


def test_planted_duplicates_are_counted_exactly_and_each_differs_as_its_kind_says(
        generated: GeneratedFile, rows: list[dict[str, str]]) -> None:
    planted = generated.planted_duplicates
    assert len(planted) == generated.likely_duplicate_rows == ROWS * 5 // 1000
    assert {kind for _, _, kind in planted} == set(DUPLICATE_KINDS)
    for row, original, kind in planted:
        assert original < row
        assert differs_as_planted(rows[row - 1], rows[original - 1], kind), (kind, rows[row - 1], rows[original - 1])
        assert rows[row - 1]["group_code"] != rows[original - 1]["group_code"] or kind != "moved"


def test_valid_rows_hold_plausible_values(rows: list[dict[str, str]]) -> None:
    locations = set(LOCATIONS)
    for row in rows:
        assert (row["location_name"], row["location_code"], row["region"]) in locations
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,30}", row["location_code"])
        assert row["able_bodied"] in ("True", "False")
        assert row["disability"] in DISABILITY_LEVELS + ("",)
        assert row["phone"] == "" or re.fullmatch(r"\+[0-9]{9,12}", row["phone"])
        assert row["email"] == "" or re.fullmatch(r"[a-z]+\.[a-z]+[0-9]+@example\.org", row["email"])
        if broken_fields(row):
            continue
        assert 0 <= age(date.fromisoformat(row["dob"])) <= 110
        assert row["income"] == "" or re.fullmatch(r"[0-9]+\.[0-9]{2}", row["income"])
        if row["first_name"] in FEMALE_FIRST_NAMES:
            assert row["sex"] in ("F", "O")
        elif row["first_name"] in MALE_FIRST_NAMES:
            assert row["sex"] in ("M", "O")


def test_names_never_need_csv_quoting() -> None:
    for value in FEMALE_FIRST_NAMES + MALE_FIRST_NAMES + LAST_NAMES + tuple(v for loc in LOCATIONS for v in loc):
        assert not set(value) & set(',"\r\n'), value
    assert not set(FEMALE_FIRST_NAMES) & set(MALE_FIRST_NAMES)


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = write_registry_file(tmp_path / "a.csv", 500, seed=7, today=TODAY)
    second = write_registry_file(tmp_path / "b.csv", 500, seed=7, today=TODAY)
    other = write_registry_file(tmp_path / "c.csv", 500, seed=8, today=TODAY)
    assert first.path.read_bytes() == second.path.read_bytes() != other.path.read_bytes()


def test_shares_out_of_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shares"):
        write_registry_file(tmp_path / "x.csv", 10, invalid_share=0.5)
