"""Airflow DAG `beneficiaries_export`: a plan's beneficiaries a filter selects, as CSV in the outbox (audited)."""

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from benefitflow.export_task import run_export
from benefitflow.programmes.export import beneficiaries_of

with DAG(
    dag_id="beneficiaries_export",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["benefitflow", "programmes"],
    default_args={"owner": "benefitflow", "retries": 0},
    params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "filter": Param({}, type="object",
                        description='JSON filter, e.g. {"all": [{"field": "status", "op": "=", "value": "ACTIVE"}]}; '
                                    "{} exports every beneficiary of the plan"),
        "columns": Param([], type="array", items={"type": "string"},
                         description="columns to export (empty: the default set)"),
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
) as dag:

    @task(task_id="export")
    def export(**context: Any) -> dict[str, Any]:
        return run_export(beneficiaries_of, context["params"],
                          user=context["dag_run"].triggering_user_name or "system", label=context["run_id"])

    export()
