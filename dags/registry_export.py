"""Airflow DAG `registry_export`: the individuals a filter selects, as CSV in the outbox (audited)."""

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from benefitflow.export_task import run_export
from benefitflow.registry import search

with DAG(
    dag_id="registry_export",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["benefitflow", "registry"],
    default_args={"owner": "benefitflow", "retries": 0},
    params={
        "filter": Param({}, type="object",
                        description='JSON filter, e.g. {"all": [{"field": "age", "op": ">=", "value": 18}, '
                                    '{"field": "region", "op": "in", "value": ["North"]}]}; {} exports everyone'),
        "columns": Param([], type="array", items={"type": "string"},
                         description="columns to export (empty: the default set)"),
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
) as dag:

    @task(task_id="export")
    def export(**context: Any) -> dict[str, Any]:
        return run_export(lambda _cur, _params: search.source(), context["params"],
                          user=context["dag_run"].triggering_user_name or "system", label=context["run_id"])

    export()
