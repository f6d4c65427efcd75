"""Helpers for the payment tests (cycles and payrolls): plans of a region's people, bills, payroll files."""

from __future__ import annotations

import csv
import json
from typing import Any

from benefitflow.payments.payroll import payroll_dir
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from tests.integration.programme_data import in_region, plan_document, query, run


def read_rows(name: str) -> list[dict[str, str]]:
    with (payroll_dir() / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_control(name: str) -> dict[str, Any]:
    return json.loads((payroll_dir() / f"{name}.control.json").read_text())


def pay(workflow, **options: Any) -> dict:
    return run(workflow, checker="payment_checker", **options)


def define_and_activate(region: str, code: str, entitlement: dict[str, Any], **plan: Any) -> None:
    """A plan of the region's twelve people, all ACTIVE."""
    run(DEFINE, plan=plan_document(code, entitlement=entitlement, **plan))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [in_region(region)]})


def bills(code: str, cycle: str) -> list[tuple]:
    return query("SELECT i.role, i.first_name, b.amount, b.status FROM payments.bills b"
                 " JOIN registry.individuals i USING (individual_id) WHERE b.plan_code = %s AND b.cycle_code = %s"
                 " ORDER BY i.role, b.amount", code, cycle)
