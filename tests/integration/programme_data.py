"""Helpers for tests of programme and payment workflows: small data through the real workflows."""

from __future__ import annotations

import uuid
from typing import Any

from benefitflow.core import config, db
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.declaration import Workflow
from benefitflow.workflows.direct import run_steps
from benefitflow.workflows.direct import run_steps as run_upload

HEADER = "first_name,last_name,dob,sex,group_code,recipient_info,individual_role,region,disability"


def run(workflow: Workflow, checker: str | None = "checker", **options: Any) -> dict:
    return run_steps(workflow, options=options, maker="maker", checker=checker, run_id=uuid.uuid4().hex)


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def plan_document(code: str, **changes: Any) -> dict[str, Any]:
    return {"code": code, "name": f"Plan {code}", "type": "INDIVIDUAL", "valid_from": "2026-01-01",
            "valid_to": "2027-12-31", "currency": "KES", "payment_frequency": "MONTHLY",
            "beneficiary_data_schema": {"type": "object", "properties": {
                "school": {"type": "string", "maxLength": 80}, "grade": {"type": "integer", "minimum": 1}}},
            "default_criteria": {"POTENTIAL": {"all": [{"field": "sex", "op": "=", "value": "F"}]}},
            "entitlement": {"fixed_amount": "1500.00", "top_ups": [
                {"criteria": {"all": [{"field": "disability", "op": "=", "value": "severe"}]}, "amount": "500.00"}]},
            **changes}


def register_region() -> str:
    """A region of its own: four households of three (women heads, the first one severely disabled)."""
    name = f"R{tag()}"
    rows = []
    for household in range(4):
        code, surname = f"P{tag()}", f"Mwangi{tag()}"
        disability = "severe" if household == 0 else "none"
        rows += [f"Wanjiru,{surname},1980-01-0{household + 1},F,{code},1,HEAD,{name},{disability}",
                 f"Kamau,{surname},1978-02-0{household + 1},M,{code},2,SPOUSE,{name},none",
                 f"Njeri,{surname},2016-03-0{household + 1},F,{code},0,DAUGHTER,{name},none"]
    path = config.inbox() / f"programme-people-{name}.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    run_upload(INDIVIDUALS, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
               run_id=uuid.uuid4().hex)
    return name


def in_region(name: str) -> dict[str, Any]:
    return {"field": "region", "op": "=", "value": name}
