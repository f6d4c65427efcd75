"""Searching the registry with the filter language, and exporting what a filter selects (audited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import filters
from benefitflow.core.filters import Field
from benefitflow.registry import schema
from benefitflow.workflows import export_files
from benefitflow.workflows.declaration import Approval
from benefitflow.workflows.export import export_workflow, filter_and_columns

INDIVIDUAL = "i"
HOUSEHOLD = "h"
PERSON_COLUMNS = tuple(c for c in schema.CORE_COLUMNS if c != "dob")
HOUSEHOLD_MEMBERSHIP = ("household_code", "role", "recipient_type")
TEXT_COLUMNS = (*PERSON_COLUMNS, *HOUSEHOLD_MEMBERSHIP)
FROM_REGISTRY = sql.SQL("registry.individuals AS i LEFT JOIN registry.households AS h USING (household_code)")


def fields() -> dict[str, Field]:
    """Every field a registry filter may name: core columns, age, household size, schema variables."""
    registry = schema.load()
    catalogue = {name: filters.core_field(name, "string", table_alias=INDIVIDUAL) for name in TEXT_COLUMNS}
    catalogue["individual_id"] = Field("individual_id", "string", sql.SQL("i.individual_id::text"))
    catalogue["dob"] = filters.core_field("dob", "date", table_alias=INDIVIDUAL)
    catalogue["age"] = filters.age_field("dob", table_alias=INDIVIDUAL)
    catalogue["household_size"] = filters.core_field("household_size", "integer", "member_count", HOUSEHOLD)
    variables = {"properties": {p.name: p.definition for p in registry.variables}}
    catalogue.update(filters.schema_fields(variables, "attributes", table_alias=INDIVIDUAL))
    return catalogue


def where(document: Any) -> sql.Composable:
    return filters.compile_filter(document, fields())


def count(cur: psycopg2.extensions.cursor, document: Any) -> int:
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(FROM_REGISTRY, where(document)))
    return int(cur.fetchone()[0])


def default_columns() -> list[str]:
    return ["individual_id", *PERSON_COLUMNS, "dob", *HOUSEHOLD_MEMBERSHIP, "household_size",
            *(p.name for p in schema.load().variables)]


def source() -> export_files.Source:
    return export_files.Source(name="registry", fields=fields(), rows=FROM_REGISTRY,
                               order_by=sql.SQL("i.individual_id"), default_columns=tuple(default_columns()),
                               key=sql.SQL("i.individual_id"), key_column="individual_id")


def export(
    cur: psycopg2.extensions.cursor, *, document: Any, columns: list[str] | None, target_dir: Path, user: str,
    label: str,
) -> export_files.Export:
    """Write the individuals the filter selects (with their household) as CSV into `target_dir`, audited."""
    return export_files.export(cur, source(), document=document, columns=columns, target_dir=target_dir, user=user,
                               label=label)


WORKFLOW = export_workflow(
    dag_id="registry_export",
    source_for=lambda _cur, _options: source(),
    approve=Approval(group="RegistryCheckers"),
    params={
        **filter_and_columns(
            'JSON filter, e.g. {"all": [{"field": "age", "op": ">=", "value": 18}, '
            '{"field": "region", "op": "in", "value": ["North"]}]}; {} exports everyone'),
    },
    doc_md="""
### Export individuals from the registry

Writes the individuals the **filter** selects, with their household, as CSV into the outbox
(`exports/`). Every export of personal data is recorded in the audit trail: who, which
filter, which columns, how many rows, the file's sha256.

**filter** — the platform's filter language: groups `all` / `any` / `not`; conditions
`{"field", "op", "value"}` with `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `contains`,
`starts with`, `is null`, `is not null`. Fields: `first_name`, `last_name`, `sex`, `dob`, `age`,
`national_id`, `location_code`, `location_name`, `region`, `household_code`, `role`,
`recipient_type`, `household_size` and the registry schema's variables (e.g. `disability`,
`number_of_children`). An unknown field, a wrong type or a malformed filter fails the run
with a message saying where.

**columns** — which columns to write (same names); empty for the default set.
""",
    tags=("registry",),
)
