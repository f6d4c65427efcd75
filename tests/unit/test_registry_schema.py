"""The registry schema: what a programme may write in it, and the GX suite generated from it."""

from __future__ import annotations

import copy

import pytest

from benefitflow.registry import schema
from benefitflow.workflows import suites

DEFAULT = schema.load(schema.DEFAULT_SCHEMA_FILE)


def with_changes(change) -> dict:
    document = copy.deepcopy(DEFAULT.document)
    change(document)
    return document


def test_the_shipped_schema_declares_the_issue_variables() -> None:
    names = set(DEFAULT.properties)
    assert {"able_bodied", "educated_level", "number_of_children", "national_id", "phone", "email", "disability",
            "income"} <= names
    assert {p.name for p in DEFAULT.variables} == names - set(schema.CORE_COLUMNS)
    assert {p["name"] for p in DEFAULT.variables_manifest() if p["personal"]} == {"phone", "email"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["properties"].__setitem__("x", {"type": "strin"}), "not a valid JSON Schema"),
        (lambda d: d["properties"].__setitem__("Bad Name", {"type": "string"}), "must match"),
        (lambda d: d["properties"].__setitem__("group_code", {"type": "string"}), "reserved"),
        (lambda d: d["required"].remove("dob"), "'dob' is missing or not required"),
        (lambda d: d["properties"].__setitem__("tags", {"type": "array"}), "use string, integer"),
        (lambda d: d["properties"].__setitem__("dob", {"type": "string"}), "dob must be a string with format date"),
    ],
)
def test_a_wrong_schema_is_refused_with_the_reason(change, message: str) -> None:
    with pytest.raises(schema.SchemaError, match=message):
        schema.parse(with_changes(change))


def test_the_generated_suite_covers_each_declared_rule_for_the_columns_in_the_file() -> None:
    header = ["first_name", "last_name", "dob", "sex", "national_id", "number_of_children", "able_bodied",
              "income", "group_code", "recipient_info", "individual_role"]
    document = schema.suite_document(DEFAULT, header, "create")
    rules = {(e["kwargs"]["column"], e["type"].removeprefix("expect_column_")) for e in document["expectations"]}
    assert {
        ("first_name", "values_to_not_be_null"), ("first_name", "value_lengths_to_be_between"),
        ("dob", "values_to_not_be_null"), ("dob__is_date", "values_to_be_in_set"),
        ("dob__days_old", "values_to_be_between"), ("dob__age", "values_to_be_between"),
        ("sex", "values_to_be_in_set"), ("national_id", "values_to_match_regex"), ("national_id", "values_to_be_unique"),
        ("number_of_children", "values_to_match_regex"), ("number_of_children__value", "values_to_be_between"),
        ("able_bodied", "values_to_match_regex"), ("income__value", "values_to_be_between"),
        ("group_code", "values_to_match_regex"), ("recipient_info", "values_to_be_in_set"),
        ("individual_role", "values_to_be_in_set"),
    } <= rules
    assert not any(column.startswith(("phone", "email", "id")) for column, _ in rules)  # not in the file
    assert len(suites.suite_from_document(document).expectations) == len(document["expectations"])


def test_update_mode_requires_a_unique_uuid_and_only_present_columns() -> None:
    document = schema.suite_document(DEFAULT, ["id", "phone"], "update")
    rules = {(e["kwargs"]["column"], e["type"].removeprefix("expect_column_")) for e in document["expectations"]}
    assert rules == {("id", "values_to_not_be_null"), ("id", "values_to_match_regex"), ("id", "values_to_be_unique"),
                     ("phone", "values_to_match_regex")}
