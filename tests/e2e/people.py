"""People for end-to-end tests, registered directly (the registry is not what those tests are about)."""

from __future__ import annotations

import os
import uuid

from benefitflow.core import db
from benefitflow.platform.cli import verify_audit
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps
from benefitflow_dev.instance import Instance

HEADER = "first_name,last_name,dob,sex,group_code,recipient_info,individual_role,region"


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def register_region(database) -> str:
    """Three households of two (an elder born 1950-05-0n and a son born 2010) in a region of their own."""
    name = f"E2E{uuid.uuid4().hex[:6].upper()}"
    rows = []
    for n in range(3):
        code = f"{name}-{n}"
        rows += [f"Achieng,Otieno{name}{n},1950-05-0{n + 1},F,{code},1,HEAD,{name}",
                 f"Juma,Otieno{name}{n},2010-06-0{n + 1},M,{code},0,SON,{name}"]
    (database.inbox / f"{name}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    run_steps(INDIVIDUALS, file=f"{name}.csv", options={"mode": "create"}, maker="maker", checker="checker",
              run_id=uuid.uuid4().hex)
    return name


# An individuals import run through the running services: the Celery and fault tests' workflow.
DAG = "individuals_import"


def people_file(database: Instance, households: int = 3) -> tuple[str, str]:
    """A file of two-person households in a region of its own; its name and the region."""
    region = f"CEL{uuid.uuid4().hex[:6].upper()}"
    rows = []
    for n in range(households):
        code = f"{region}-{n}"
        rows += [f"Wanjiru,Kamau{region}{n},1961-03-0{n + 1},F,{code},1,HEAD,{region}",
                 f"Otieno,Kamau{region}{n},2012-07-0{n + 1},M,{code},0,SON,{region}"]
    (database.inbox / f"{region}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return f"{region}.csv", region


def proposed(airflow, database: Instance) -> tuple[str, str]:
    """An individuals import triggered by the maker and waiting for its checker: its run id and region."""
    name, region = people_file(database)
    response = airflow("maker").trigger(DAG, {"file": name, "mode": "create"})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    airflow("maker").wait_until_parked(DAG, run_id)
    return run_id, region


def committed_once(run_id: str, region: str, people: int = 6) -> None:
    (upload_id,) = query("SELECT upload_id FROM intake.uploads WHERE run_id = %s", run_id)[0]
    assert query("SELECT count(*) FROM ledger.commits WHERE upload_id = %s", upload_id) == [(1,)]
    assert query("SELECT count(*) FROM ledger.individual_versions WHERE region = %s", region) == [(people,)]
    assert query("SELECT count(*) FROM registry.individuals WHERE region = %s", region) == [(people,)]
    assert verify_audit(os.environ["BENEFITFLOW_DATABASE_URL"]) == 0
