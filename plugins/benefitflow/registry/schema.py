"""The registry's variables, declared once in a JSON Schema, and what is derived from it.

From `individual.schema.json` (or the file named by BENEFITFLOW_REGISTRY_SCHEMA) come:
the columns an individuals upload may carry, the Great Expectations suite that checks
an upload (types, enums, ranges, patterns, required fields, real dates, sane ages), the
SQL that turns the staged text into typed values, and the filter fields of the registry.

Core properties are stored in columns of the registry; every other property is a
programme variable kept in `attributes` (jsonb), typed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import psycopg2.extensions
from psycopg2 import sql

from benefitflow import filters

DEFAULT_SCHEMA_FILE = Path(__file__).with_name("individual.schema.json")
CORE_COLUMNS = ("first_name", "last_name", "dob", "sex", "national_id", "location_code", "location_name", "region")
REQUIRED_CORE = ("first_name", "last_name", "dob")
NAME_COLUMNS = ("first_name", "last_name")
# What a name may not begin with (after spaces, no-break or zero-width ones): spreadsheets evaluate such cells.
FORMULA_START = r"^[[:space:]\u00a0\u200b\ufeff]*[=+@|\uff1d\uff0b\uff20]"
HOUSEHOLD_COLUMNS = ("group_code", "recipient_info", "individual_role")
ID_COLUMN = "id"
ROLES = ("HEAD", "SPOUSE", "SON", "DAUGHTER", "FATHER", "MOTHER", "BROTHER", "SISTER", "GRANDSON",
         "GRANDDAUGHTER", "GRANDFATHER", "GRANDMOTHER", "OTHER RELATIVE", "NOT RELATED")
RECIPIENT_INFO = ("0", "1", "2")  # openIMIS: 1 primary recipient, 2 secondary, 0 or empty none
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
GROUP_CODE_PATTERN = "^[A-Za-z0-9._-]{1,30}$"
INTEGER_PATTERN = "^-?[0-9]{1,15}$"
NUMBER_PATTERN = "^-?[0-9]{1,15}([.][0-9]{1,6})?$"
BOOLEAN_PATTERN = "^(true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|1|0)$"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
ALL_ROWS = sql.SQL("TRUE")
TYPES = {"string": "text", "date": "date", "integer": "integer", "number": "numeric", "boolean": "boolean"}


class SchemaError(ValueError):
    """The registry schema file itself is wrong (a configuration error, not a bad upload)."""


@dataclass(frozen=True)
class Property:
    name: str
    type: str  # string, date, integer, number, boolean
    definition: dict[str, Any]
    required: bool

    @property
    def is_core(self) -> bool:
        return self.name in CORE_COLUMNS

    @property
    def personal(self) -> bool:
        return bool(self.definition.get("x-personal"))

    @property
    def sql_type(self) -> str:
        return TYPES[self.type]


@dataclass(frozen=True)
class RegistrySchema:
    document: dict[str, Any]
    properties: dict[str, Property]

    @property
    def variables(self) -> list[Property]:
        return [p for p in self.properties.values() if not p.is_core]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.document, sort_keys=True).encode()).hexdigest()

    def variables_manifest(self) -> list[dict[str, Any]]:
        """What dbt needs to flatten attributes: name, SQL type, personal or not."""
        return [{"name": p.name, "sql_type": p.sql_type, "personal": p.personal} for p in self.variables]


def schema_file() -> Path:
    return Path(os.environ.get("BENEFITFLOW_REGISTRY_SCHEMA") or DEFAULT_SCHEMA_FILE)


@cache
def load(path: Path | None = None) -> RegistrySchema:
    path = path or schema_file()
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"registry schema {path}: cannot be read as JSON ({exc})") from exc
    return parse(document, str(path))


def parse(document: dict[str, Any], where: str = "registry schema") -> RegistrySchema:
    try:
        jsonschema.Draft202012Validator.check_schema(document)
    except jsonschema.SchemaError as exc:
        raise SchemaError(f"{where}: not a valid JSON Schema ({exc.message})") from exc
    declared = document.get("properties") or {}
    required = set(document.get("required") or [])
    problems = [f"property name {n!r} must match {NAME.pattern}" for n in declared if not NAME.match(n)]
    problems += [f"{n!r} is a reserved column" for n in declared if n in (*HOUSEHOLD_COLUMNS, ID_COLUMN, "attributes")]
    problems += [f"core property {n!r} is missing or not required" for n in REQUIRED_CORE
                 if n not in declared or n not in required]
    if problems:
        raise SchemaError(f"{where}: " + "; ".join(problems))
    properties = {
        name: Property(name, _type_of(name, definition, where), definition, name in required)
        for name, definition in declared.items()
    }
    if properties["dob"].type != "date":
        raise SchemaError(f"{where}: dob must be a string with format date")
    return RegistrySchema(document, properties)


def _type_of(name: str, definition: dict[str, Any], where: str) -> str:
    try:
        return filters.property_type(definition)
    except filters.FilterError as exc:
        raise SchemaError(f"{where}: property {name!r}: {exc}") from exc


def record(cur: psycopg2.extensions.cursor, schema: RegistrySchema) -> int:
    """Keep the schema in force in the ledger (once per version); return its id."""
    cur.execute("SELECT schema_id FROM ledger.registry_schemas WHERE sha256 = %s", (schema.sha256,))
    if found := cur.fetchone():
        return int(found[0])
    cur.execute(
        "INSERT INTO ledger.registry_schemas (sha256, document, variables) VALUES (%s, %s, %s) RETURNING schema_id",
        (schema.sha256, json.dumps(schema.document), json.dumps(schema.variables_manifest())),
    )
    return int(cur.fetchone()[0])


# -- the GX suite for one upload -------------------------------------------------------------
def suite_document(schema: RegistrySchema, header: list[str], mode: str, *,
                   people_may_exist: bool = False) -> dict[str, Any]:
    """Expectations for the columns this file carries, run on the checked table (see `checked_table_sql`).

    people_may_exist: rows may name a registered person by `id` instead (a beneficiaries file),
    so no person column is required here (a SQL check requires them of new people).
    """
    expectations: list[dict[str, Any]] = []
    present = [p for p in schema.properties.values() if p.name in header]
    for prop in present:
        expectations += property_expectations(prop, required=prop.required and not people_may_exist)
    expectations += [expectation("not_match_regex", name, "must not begin with =, +, @ or | (a spreadsheet would run "
                                 "the name as a formula)", regex=FORMULA_START)
                     for name in NAME_COLUMNS if name in header]
    if mode == "update":
        expectations += [
            expectation("not_null", ID_COLUMN, "the id of the individual to update is required"),
            expectation("match_regex", ID_COLUMN, "not an individual id (a UUID)", regex=UUID_PATTERN),
            expectation("unique", ID_COLUMN, "the same individual appears more than once in the file"),
        ]
    if "group_code" in header:
        expectations.append(expectation("match_regex", "group_code",
                                        "not a household code (1-30 letters, digits, . _ -)",
                                        regex=GROUP_CODE_PATTERN))
    if "recipient_info" in header:
        expectations.append(expectation("in_set", "recipient_info", "recipient_info must be 1 (primary), 2 (secondary) "
                                    "or 0/empty (none)", value_set=list(RECIPIENT_INFO)))
    if "individual_role" in header:
        expectations.append(expectation("in_set", "individual_role", f"not a household role ({', '.join(ROLES)})",
                                    value_set=list(ROLES)))
    return {"name": f"individuals_{mode}", "expectations": expectations,
            "meta": {"generated_from": "registry schema", "schema_sha256": schema.sha256}}


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
def checked_table_sql(
    schema: RegistrySchema, header: list[str], staged: str, checked: str, rows: sql.Composable = ALL_ROWS,
    sources: Mapping[str, str] | None = None,
) -> sql.Composed:
    """CREATE the checked table of an individuals upload (see `typed_table_sql`), with id, role and recipient."""
    return typed_table_sql(
        list(schema.properties.values()), schema.variables, header, staged, checked,
        text_columns=[*schema.properties, *HOUSEHOLD_COLUMNS, ID_COLUMN], derived=person_columns(), rows=rows,
        sources=sources,
    )


def as_uuid(text: sql.Composable) -> sql.Composable:
    """A text column of a file as a uuid when it is one, else NULL: ids are compared as uuids (indexes)."""
    return sql.SQL("CASE WHEN {0} ~ {1} THEN {0}::uuid END").format(text, sql.Literal(UUID_PATTERN))


def person_columns() -> list[sql.Composable]:
    """The checked row's person id (from `id`), role and recipient type: what registry checks read."""
    return [
        sql.SQL("{} AS individual_id").format(as_uuid(sql.SQL("p.id"))),
        sql.SQL("upper(p.individual_role) AS role"),
        sql.SQL("CASE p.recipient_info WHEN '1' THEN 'PRIMARY' WHEN '2' THEN 'SECONDARY' END AS recipient_type"),
    ]


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
