"""Exporting payments (bills with status, amounts due and paid, receipts) with the filter language."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core.filters import Field
from benefitflow.workflows.declaration import Approval
from benefitflow.workflows.export import export_workflow, filter_and_columns
from benefitflow.workflows.export_files import Source

# Who is paid: the person billed (INDIVIDUAL plans), else the household's primary recipient, else its head.
RECIPIENT = sql.SQL("coalesce(bl.individual_id, h.primary_recipient_id, h.head_individual_id)")
BILLS_WITH_RECIPIENTS = sql.SQL(
    "payments.bills bl LEFT JOIN registry.households h ON h.household_code = bl.household_code"
    " LEFT JOIN registry.individuals i ON i.individual_id = {}").format(RECIPIENT)
STATUSES = ("HELD", "DUE", "PAID", "FAILED", "CANCELLED")


def _field(name: str, type_: str, expression: str, enum: tuple[str, ...] | None = None) -> Field:
    return Field(name, type_, sql.SQL(expression), enum)


FIELDS: dict[str, Field] = {field.name: field for field in (
    _field("bill_code", "string", "bl.bill_code"),
    _field("plan", "string", "bl.plan_code"),
    _field("cycle", "string", "bl.cycle_code"),
    _field("status", "string", "bl.status", STATUSES),
    _field("amount", "number", "bl.amount"),
    _field("currency", "string", "bl.currency"),
    _field("amount_paid", "number", "bl.amount_paid"),
    _field("receipt", "string", "bl.receipt"),
    _field("paid_on", "date", "bl.paid_on"),
    _field("payroll", "string", "bl.payroll_name"),
    _field("beneficiary_id", "string", "bl.beneficiary_id::text"),
    _field("individual_id", "string", "i.individual_id::text"),
    _field("first_name", "string", "i.first_name"),
    _field("last_name", "string", "i.last_name"),
    _field("national_id", "string", "i.national_id"),
    _field("household_code", "string", "bl.household_code"),
    _field("region", "string", "i.region"),
    _field("location_code", "string", "i.location_code"),
    _field("billed_on", "date", "bl.billed_at::date"),
)}


def payments_of(_cur: psycopg2.extensions.cursor, _params: dict[str, Any]) -> Source:
    """Every bill with its recipient; the user's filter chooses plan, cycle, payroll, status, region, person."""
    return Source(name="payments", fields=FIELDS, rows=BILLS_WITH_RECIPIENTS, order_by=sql.SQL("bl.bill_code"),
                  default_columns=tuple(FIELDS), key=sql.SQL("bl.bill_id"), key_column="bill_id")


WORKFLOW = export_workflow(
    dag_id="payments_export",
    source_for=payments_of,
    approve=Approval(group="PaymentCheckers"),
    params={
        **filter_and_columns(
            'JSON filter, e.g. {"all": [{"field": "cycle", "op": "=", "value": "2026-01"}, '
            '{"field": "status", "op": "in", "value": ["FAILED", "DUE"]}]}; {} exports every '
            "bill",
            "columns to export (empty: all of them)"),
    },
    doc_md="""
### Export payments

Writes the bills the **filter** selects as CSV into the outbox (`exports/payments-….csv`): code,
plan, cycle, status (HELD, DUE, PAID, FAILED, CANCELLED), amount due, currency, amount paid, receipt, date
paid, payroll, and the recipient (beneficiary, individual, name, national id, household, region).
Recorded in the audit trail: who, which filter and columns, how many rows, the file's sha256.

**filter** — the platform's filter language over `plan`, `cycle`, `payroll`, `status`, `region`,
`individual_id`, `national_id`, `household_code`, `beneficiary_id`, `bill_code`, `amount`,
`amount_paid`, `receipt`, `paid_on`, `billed_on`, `first_name`, `last_name`, `location_code`.
For a GROUP plan the recipient is the household's primary recipient (else its head), as in the
payroll file.

**columns** — which of those to write; empty for all.
""",
    tags=("payments",),
)
