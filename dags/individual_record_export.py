"""Airflow DAG `individual_record_export`: one person's whole record as CSV in the outbox (audited)."""

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from benefitflow.export_task import run_export
from benefitflow.records.individual import record_of

with DAG(
    dag_id="individual_record_export",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["benefitflow", "registry"],
    default_args={"owner": "benefitflow", "retries": 0},
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
) as dag:

    @task(task_id="export")
    def export(**context: Any) -> dict[str, Any]:
        return run_export(record_of, {**context["params"], "filter": {}}, user=context["dag_run"].triggering_user_name
                          or "system", label=context["run_id"])

    export()
