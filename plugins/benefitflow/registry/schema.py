"""The registry's variables, declared once in a JSON Schema, and what is derived from it.

From `individual.schema.json` (or the file named by BENEFITFLOW_REGISTRY_SCHEMA) come:
the columns an individuals upload may carry, the Great Expectations suite that checks
an upload and the SQL that turns the staged text into typed values (both compiled by
`benefitflow.core.columns` from the properties' types), and the filter fields of the registry.

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

from benefitflow.core import filters
from benefitflow.core.columns import (
    ALL_ROWS,
    UUID_PATTERN,
    Property,
    as_uuid,
    expectation,
    property_expectations,
    typed_table_sql,
)

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
GROUP_CODE_PATTERN = "^[A-Za-z0-9._-]{1,30}$"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class SchemaError(ValueError):
    """The registry schema file itself is wrong (a configuration error, not a bad upload)."""


@dataclass(frozen=True)
class RegistrySchema:
    document: dict[str, Any]
    properties: dict[str, Property]

    @property
    def variables(self) -> list[Property]:
        return [p for p in self.properties.values() if p.name not in CORE_COLUMNS]

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


def person_columns() -> list[sql.Composable]:
    """The checked row's person id (from `id`), role and recipient type: what registry checks read."""
    return [
        sql.SQL("{} AS individual_id").format(as_uuid(sql.SQL("p.id"))),
        sql.SQL("upper(p.individual_role) AS role"),
        sql.SQL("CASE p.recipient_info WHEN '1' THEN 'PRIMARY' WHEN '2' THEN 'SECONDARY' END AS recipient_type"),
    ]
