"""Demo data for a newcomer, loaded once by `make up` through the real workflows.

The demo maker triggers the workflow, the demo checker approves it on Airflow's REST API,
so the demo data shows in the upload history like anything else.
"""

from __future__ import annotations

from datetime import date

from benefitflow import db
from benefitflow.platform.airflow_client import AirflowClient
from benefitflow.platform.instance import Instance

DEMO_REGISTRY_ROWS = 10_000
DEMO_REGISTRY_FILE = "demo-registry.csv"
DEMO_DATE = date(2026, 1, 1)  # fixed, so the file (and its checksum) is the same on every machine


class DemoError(RuntimeError):
    pass


def load(instance: Instance) -> None:
    load_registry(instance)


def load_registry(instance: Instance) -> None:
    from benefitflow.synthetic import write_registry_file

    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT status FROM intake.uploads WHERE kind = 'individuals' AND file_name = %s",
                    (DEMO_REGISTRY_FILE,))
        earlier = [status for (status,) in cur.fetchall()]
    if any(status in ("APPLIED", "PARTIALLY_APPLIED") for status in earlier):
        print("  demo registry: already loaded")
        return
    # A failed attempt keeps its checksum: the next one must be a different file.
    path = instance.inbox / DEMO_REGISTRY_FILE
    generated = write_registry_file(path, DEMO_REGISTRY_ROWS, seed=20260101 + len(earlier), today=DEMO_DATE,
                                    invalid_share=0.0, duplicate_share=0.0, likely_duplicate_share=0.002,
                                    household_prefix="DM")
    run_approved(instance, "individuals_import",
                 {"file": path.name, "mode": "create", "on_invalid_rows": "reject_file"})
    print(f"  demo registry: {generated.rows:,} individuals in {generated.households:,} households, "
          "imported by maker, approved by checker")


def run_approved(instance: Instance, dag_id: str, conf: dict[str, object]) -> str:
    maker = AirflowClient(instance.airflow_url, "maker", instance.user_password("maker"))
    checker = AirflowClient(instance.airflow_url, "checker", instance.user_password("checker"))
    maker.wait_for_dag(dag_id)
    response = maker.trigger(dag_id, conf)
    if response.status_code != 200:
        raise DemoError(f"triggering {dag_id} failed: {response.status_code} {response.text[:300]}")
    run_id = response.json()["dag_run_id"]
    maker.wait_until_parked(dag_id, run_id)
    answer = checker.answer(dag_id, run_id, "Approve")
    if answer.status_code != 200:
        raise DemoError(f"approving {dag_id} run {run_id} failed: {answer.status_code} {answer.text[:300]}")
    state = maker.wait_for_run(dag_id, run_id, timeout=900)
    if state != "success":
        raise DemoError(f"{dag_id} run {run_id} ended {state}: {maker.task_states(dag_id, run_id)}")
    return run_id
