"""One person's record (marts.mart_individual_record) as CSV: identity, plans, benefits, grievances, uploads."""

from __future__ import annotations

import re
from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core import columns, filters
from benefitflow.core.errors import RequestError
from benefitflow.workflows.declaration import Approval
from benefitflow.workflows.export import export_workflow
from benefitflow.workflows.export_files import Source

UUID = re.compile(columns.UUID_PATTERN)
COLUMNS = {
    "individual_id": "string", "full_name": "string", "household_code": "string", "region": "string",
    "location_code": "string", "section": "string", "occurred_at": "string", "plan_code": "string",
    "cycle_code": "string", "reference": "string", "status": "string", "amount_due": "number",
    "amount_paid": "number", "receipt": "string", "detail": "string",
}


def record_of(cur: psycopg2.extensions.cursor, params: dict[str, Any]) -> Source:
    """The record of the person `individual_id` names; refused when nobody has that id."""
    individual_id = str(params.get("individual_id") or "").strip()
    if not UUID.match(individual_id):
        raise RequestError(f"individual_id must be an individual's id (a uuid), not {individual_id[:40]!r}")
    cur.execute("SELECT 1 FROM registry.individuals WHERE individual_id = %s", (individual_id,))
    if cur.fetchone() is None:
        raise RequestError(f"no individual with id {individual_id} in the registry")
    fields = {name: filters.Field(name, kind, sql.SQL("r.{}::text").format(sql.Identifier(name))
                                  if name in ("individual_id", "occurred_at") else sql.Identifier("r", name))
              for name, kind in COLUMNS.items()}
    return Source(name="individual_record", fields=fields, rows=sql.SQL("marts.mart_individual_record AS r"),
                  order_by=sql.SQL("r.section_order, r.occurred_at, r.reference"), default_columns=tuple(COLUMNS),
                  key=sql.SQL("r.individual_id"), key_column="individual_id",
                  scope=sql.SQL("r.individual_id = {}::uuid").format(sql.Literal(individual_id)))


WORKFLOW = export_workflow(
    dag_id="individual_record_export",
    source_for=record_of,
    approve=Approval(group="RegistryCheckers"),
    params={
        "individual_id": Param("", type="string", minLength=36, maxLength=36,
                               description="The person's id (registry_export or the Individual record dashboard "
                                           "show it)"),
    },
    doc_md="""
### Export one person's record

Writes everything the platform holds about one individual as CSV into the outbox (`exports/`),
one row per entry, in this order: **identity** (household, role, recipient, location, region),
**plan status** (every plan they are or were in — their own or their household's — with each
status, reason and checker), **benefit** (every bill: cycle, amount due, amount paid, receipt,
payroll), **grievance** (every ticket with its status, due date and resolution) and **upload**
(every file that created or changed the record, with the row). The same rows as the
*Individual record* dashboard in Superset. The export is recorded in the audit trail.
""",
    tags=("registry",),
)
