"""Exporting a plan's beneficiaries with the filter language (status, registry fields, the plan's variables)."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.exports import Source
from benefitflow.programmes import plans

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
        scope=sql.SQL("b.plan_code = {}").format(sql.Literal(plan.code)),
    )
