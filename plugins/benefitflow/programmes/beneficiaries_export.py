"""Exporting a plan's beneficiaries with the filter language (status, registry fields, the plan's variables)."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.programmes import plans
from benefitflow.workflows.declaration import Approval
from benefitflow.workflows.export import export_workflow, filter_and_columns
from benefitflow.workflows.export_files import Source

PERSON = ("first_name", "last_name", "dob", "sex", "region", "location_code", "household_code")


def beneficiaries_of(cur: psycopg2.extensions.cursor, params: dict[str, Any]) -> Source:
    """The plan's beneficiaries (a GROUP plan's households shown with their head), in any status."""
    plan = plans.require(cur, params.get("plan")).plan
    variables = tuple(plan.variables_schema.get("properties") or {})
    return Source(
        name="beneficiaries",
        fields=plans.beneficiary_fields(plan),
        rows=plans.beneficiary_rows(plan.type),
        order_by=sql.SQL("b.beneficiary_id"),
        default_columns=("beneficiary_id", "status", "individual_id", *PERSON, *variables),
        key=sql.SQL("b.beneficiary_id"),
        key_column="beneficiary_id",
        scope=sql.SQL("b.plan_code = {}").format(sql.Literal(plan.code)),
    )


WORKFLOW = export_workflow(
    dag_id="beneficiaries_export",
    source_for=beneficiaries_of,
    approve=Approval(group="ProgrammeCheckers"),
    params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        **filter_and_columns(
            'JSON filter, e.g. {"all": [{"field": "status", "op": "=", "value": "ACTIVE"}]}; '
            "{} exports every beneficiary of the plan"),
    },
    doc_md="""
### Export a plan's beneficiaries

Writes the beneficiaries of **plan** that the **filter** selects as CSV into the outbox
(`exports/`), in any status (filter on `status` to choose). Recorded in the audit trail: who,
which plan and filter, which columns, how many rows, the file's sha256.

**filter** — the platform's filter language over `status`, `beneficiary_id`, the registry's
fields (`first_name`, `age`, `region`, `household_size`, ...; for a GROUP plan, the household
head's) and the plan's own variables (its `beneficiary_data_schema`).

**columns** — which columns to write (same names); empty for the default set: id, status,
the person and household, and the plan's variables.
""",
    tags=("programmes",),
)
