"""Columns of a CSV file, declared by type, and what is derived from them: the Great Expectations a
suite runs on each column (types, enums, ranges, patterns, required values, real dates, sane
ages) and the SQL that turns the staged text into typed values (the checked table). Used by every
upload workflow: the registry's schema (`registry/schema.py`), a plan's beneficiary data, a
grievance file, a provider's payroll answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
INTEGER_PATTERN = "^-?[0-9]{1,15}$"
NUMBER_PATTERN = "^-?[0-9]{1,15}([.][0-9]{1,6})?$"
BOOLEAN_PATTERN = "^(true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|1|0)$"
ALL_ROWS = sql.SQL("TRUE")
TYPES = {"string": "text", "date": "date", "integer": "integer", "number": "numeric", "boolean": "boolean"}


@dataclass(frozen=True)
class Property:
    name: str
    type: str  # string, date, integer, number, boolean
    definition: dict[str, Any]
    required: bool

    @property
    def personal(self) -> bool:
        return bool(self.definition.get("x-personal"))

    @property
    def sql_type(self) -> str:
        return TYPES[self.type]


def property_expectations(prop: Property, *, required: bool) -> list[dict[str, Any]]:
    name, definition = prop.name, prop.definition
    found: list[dict[str, Any]] = []
    if required:
        found.append(expectation("not_null", name, "a value is required"))
    if prop.type == "string":
        if "minLength" in definition or "maxLength" in definition:
            found.append(expectation("lengths_between", name, f"length must be {definition.get('minLength', 0)} to "
                                 f"{definition.get('maxLength', 'any')} characters",
                                 min_value=definition.get("minLength"), max_value=definition.get("maxLength")))
        if "pattern" in definition:
            found.append(expectation("match_regex", name, f"does not match the expected format {definition['pattern']}",
                                 regex=definition["pattern"]))
        if "enum" in definition:
            found.append(expectation("in_set", name, f"must be one of {', '.join(map(str, definition['enum']))}",
                                 value_set=list(definition["enum"])))
        if definition.get("x-unique"):
            found.append(expectation("unique", name, "the same value appears more than once in the file"))
    elif prop.type == "date":
        found.append(expectation("in_set", f"{name}__is_date", "not a real date (expected YYYY-MM-DD)",
                             value_set=[True], report=name))
        found.append(expectation("between", f"{name}__days_old", "is in the future", min_value=0, report=name))
        if age_range := definition.get("x-age-range"):
            low, high = age_range
            found.append(expectation("between", f"{name}__age", f"gives an age outside {low} to {high} years",
                                 min_value=low, max_value=high, report=name))
    elif prop.type in ("integer", "number"):
        pattern = INTEGER_PATTERN if prop.type == "integer" else NUMBER_PATTERN
        kind = "a whole number" if prop.type == "integer" else "a number"
        found.append(expectation("match_regex", name, f"not {kind}", regex=pattern))
        low, high = definition.get("minimum"), definition.get("maximum")
        if low is not None or high is not None:
            found.append(expectation("between", typed_column(prop), f"outside the range {low} to {high}",
                                 min_value=low, max_value=high, report=name))
    elif prop.type == "boolean":
        found.append(expectation("match_regex", name, "not true or false (true/false, yes/no, 1/0)",
                                 regex=BOOLEAN_PATTERN))
    return found


_EXPECTATION_TYPES = {
    "not_null": "expect_column_values_to_not_be_null",
    "unique": "expect_column_values_to_be_unique",
    "match_regex": "expect_column_values_to_match_regex",
    "not_match_regex": "expect_column_values_to_not_match_regex",
    "in_set": "expect_column_values_to_be_in_set",
    "between": "expect_column_values_to_be_between",
    "lengths_between": "expect_column_value_lengths_to_be_between",
}


def expectation(kind: str, column: str, message: str, *, report: str | None = None,
                **kwargs: Any) -> dict[str, Any]:
    """One GX expectation of a generated suite: `kind` is a key of _EXPECTATION_TYPES; the message is the user's."""
    meta: dict[str, Any] = {"message": message}
    if report:
        meta["report_column"] = report
    return {"type": _EXPECTATION_TYPES[kind], "kwargs": {"column": column, **{k: v for k, v in kwargs.items()
            if v is not None}}, "meta": meta}


# -- from staged text to typed values ---------------------------------------------------------
def as_uuid(text: sql.Composable) -> sql.Composable:
    """A text column of a file as a uuid when it is one, else NULL: ids are compared as uuids (indexes)."""
    return sql.SQL("CASE WHEN {0} ~ {1} THEN {0}::uuid END").format(text, sql.Literal(UUID_PATTERN))


def typed_table_sql(
    properties: list[Property], variables: list[Property], header: list[str], staged: str, checked: str, *,
    text_columns: list[str], derived: list[sql.Composable], rows: sql.Composable = ALL_ROWS,
    sources: Mapping[str, str] | None = None,
) -> sql.Composed:
    """CREATE the checked table: trimmed text of every known column, typed values, derived checks.

    Every column of `text_columns` is there (NULL when the file does not carry it), so the
    proposal reads one shape whatever the file's columns are; `variables` are gathered, typed,
    in `attributes`; `derived` are more expressions over the typed row `p`; `rows` chooses the
    staged rows `s` to check (all by default); `sources` names the staged column a text column
    is read from when the names differ.
    """
    sources = sources or {}
    trimmed = sql.SQL(", ").join(
        sql.SQL("nullif(btrim(s.{}), '') AS {}").format(sql.Identifier(sources.get(c, c)), sql.Identifier(c))
        if sources.get(c, c) in header else sql.SQL("NULL::text AS {}").format(sql.Identifier(c))
        for c in text_columns
    )
    typed: list[sql.Composable] = []
    checks: list[sql.Composable] = []
    for prop in properties:
        column = sql.Identifier(prop.name)
        if prop.type == "date":
            value = sql.Identifier(typed_column(prop))
            typed.append(sql.SQL("intake.parse_iso_date(t.{}) AS {}").format(column, value))
            checks += [
                sql.SQL("CASE WHEN p.{} IS NULL THEN NULL ELSE p.{} IS NOT NULL END AS {}").format(
                    column, value, sql.Identifier(f"{prop.name}__is_date")),
                sql.SQL("(current_date - p.{}) AS {}").format(value, sql.Identifier(f"{prop.name}__days_old")),
                sql.SQL("CASE WHEN p.{0} <= current_date THEN date_part('year', age(current_date, p.{0}))::integer"
                        " END AS {1}").format(value, sql.Identifier(f"{prop.name}__age")),
            ]
        elif prop.type in ("integer", "number"):
            pattern = INTEGER_PATTERN if prop.type == "integer" else NUMBER_PATTERN
            typed.append(sql.SQL("CASE WHEN t.{0} ~ {1} THEN t.{0}::numeric END AS {2}").format(
                column, sql.Literal(pattern), sql.Identifier(typed_column(prop))))
        elif prop.type == "boolean":
            typed.append(sql.SQL("CASE WHEN lower(t.{0}) IN ('true', 'yes', '1') THEN true"
                                 " WHEN lower(t.{0}) IN ('false', 'no', '0') THEN false END AS {1}").format(
                column, sql.Identifier(typed_column(prop))))
    attributes = attributes_sql(variables)
    # OFFSET 0 keeps each level a level: PostgreSQL would otherwise copy a typed value's expression (a date
    # parsed) into every check that reads it, and parse each date four times (15 s instead of 8 at 1M rows).
    return sql.SQL(
        "CREATE UNLOGGED TABLE intake.{checked} AS"
        " SELECT p.*, {computed}"
        " FROM (SELECT t.*{typed}"
        " FROM (SELECT s.row_number, {trimmed} FROM intake.{staged} s WHERE {rows} OFFSET 0) t OFFSET 0) p"
    ).format(
        checked=sql.Identifier(checked), staged=sql.Identifier(staged), trimmed=trimmed, rows=rows,
        typed=sql.SQL("").join(sql.SQL(", ") + t for t in typed),
        computed=sql.SQL(", ").join([*checks, *derived, sql.SQL("{} AS attributes").format(attributes)]),
    )


def attributes_sql(variables: list[Property]) -> sql.Composable:
    """The typed values of `variables` in the checked row `p`, as one jsonb object (nulls left out)."""
    if not variables:
        return sql.SQL("'{}'::jsonb")
    return sql.SQL("jsonb_strip_nulls(jsonb_build_object({}))").format(sql.SQL(", ").join(
        sql.SQL("{}, p.{}").format(sql.Literal(p.name), sql.Identifier(typed_column(p))) for p in variables))


def typed_column(prop: Property) -> str:
    """The checked table's column holding the property's typed value (text stays in the column itself)."""
    if prop.type == "date":
        return f"{prop.name}__date"
    if prop.type in ("integer", "number", "boolean"):
        return f"{prop.name}__value"
    return prop.name
