"""People for end-to-end tests, registered directly (the registry is not what those tests are about)."""

from __future__ import annotations

import uuid

from benefitflow.core import db
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps

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
