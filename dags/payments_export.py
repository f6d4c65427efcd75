"""Airflow DAG `payments_export`: bills a filter selects, with status, amounts and receipts, as CSV (audited)."""

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from benefitflow.export_task import run_export
from benefitflow.payments.export import payments_of

with DAG(
    dag_id="payments_export",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["benefitflow", "payments"],
    default_args={"owner": "benefitflow", "retries": 0},
    params={
        "filter": Param({}, type="object",
                        description='JSON filter, e.g. {"all": [{"field": "cycle", "op": "=", "value": "2026-01"}, '
                                    '{"field": "status", "op": "in", "value": ["FAILED", "DUE"]}]}; {} exports every '
                                    "bill"),
        "columns": Param([], type="array", items={"type": "string"},
                         description="columns to export (empty: all of them)"),
    },
    doc_md="""
### Export payments

Writes the bills the **filter** selects as CSV into the outbox (`exports/payments-….csv`): code,
plan, cycle, status (HELD, DUE, PAID, FAILED), amount due, currency, amount paid, receipt, date
paid, payroll, and the recipient (beneficiary, individual, name, national id, household, region).
Recorded in the audit trail: who, which filter and columns, how many rows, the file's sha256.

**filter** — the platform's filter language over `plan`, `cycle`, `payroll`, `status`, `region`,
`individual_id`, `national_id`, `household_code`, `beneficiary_id`, `bill_code`, `amount`,
`amount_paid`, `receipt`, `paid_on`, `billed_on`, `first_name`, `last_name`, `location_code`.
For a GROUP plan the recipient is the household's primary recipient (else its head), as in the
payroll file.

**columns** — which of those to write; empty for all.
""",
) as dag:

    @task(task_id="export")
    def export(**context: Any) -> dict[str, Any]:
        return run_export(payments_of, context["params"],
                          user=context["dag_run"].triggering_user_name or "system", label=context["run_id"])

    export()
