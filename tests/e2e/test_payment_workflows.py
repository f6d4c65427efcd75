"""A payment cycle through the running Airflow services, as a maker and a payment checker use them."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from decimal import Decimal

import pytest

from benefitflow.payments.payroll import ABANDONED_PARTIAL_SECONDS, payroll_dir
from benefitflow.platform import system_users
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.workflows.direct import run_steps as run_request
from benefitflow_dev import stack
from benefitflow_dev.provider_answers import paid, unpaid, write_answers
from tests.e2e.approvals import approved
from tests.e2e.browser import OpenPage, sign_in_to_airflow
from tests.e2e.people import query, register_region

pytestmark = [pytest.mark.e2e, pytest.mark.celery]  # also run on Celery workers (the celery tier)
pytest_plugins = ["tests.e2e.browser"]  # the payment checker's browser: screenshots of the requests


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region(database)


def failed_before_approval(maker, dag_id: str, conf: dict) -> str:
    run_id = maker.trigger(dag_id, conf).json()["dag_run_id"]
    assert maker.wait_for_run(dag_id, run_id) == "failed"
    return run_id


def filled_by_provider(database, payroll: str, failing: set[str], changes: dict[str, dict[str, str]] | None = None,
                       suffix: str = "") -> str:
    """The exported payroll file as the provider sends it back; returns its name in the inbox."""
    def answer(_number: int, row: dict[str, str]) -> dict[str, str]:
        code = row["Code"]
        done = unpaid() if code in failing else paid(row, f"MP-{code}", "2026-09-30")
        return {**done, **(changes or {}).get(code, {})}

    name = f"{payroll}{suffix}-filled.csv"
    write_answers(payroll_dir() / f"{payroll}.csv", database.inbox / name, answer)
    return name


def payroll_of(cycle: str, code: str) -> str:
    ((name,),) = query("SELECT payroll_name FROM ledger.payrolls WHERE cycle_code = %s AND plan_code = %s"
                       " ORDER BY payroll_id DESC LIMIT 1", cycle, code)
    return name


def test_a_cycle_paid_with_a_held_bill_released_and_a_stale_file_refused(airflow, database, region: str,
                                                                        pages: OpenPage) -> None:
    maker, payment_checker, checker = airflow("maker"), airflow("payment_checker"), airflow("checker")
    page = pages("payment_checker")
    sign_in_to_airflow(page, database, "payment_checker")
    seen_by = (page, database)
    code = f"E2P-{uuid.uuid4().hex[:6].upper()}"
    # 1,000.00 each; the first elder's 500.00 top-up puts her 1,500.00 over the 1,200.00 limit: held.
    entitlement = {"fixed_amount": "1000.00", "transaction_limit": "1200.00", "top_ups": [
        {"criteria": {"all": [{"field": "dob", "op": "=", "value": "1950-05-01"}]}, "amount": "500.00"}]}
    plan = {"code": code, "name": "Payments e2e", "type": "INDIVIDUAL", "valid_from": "2026-01-01", "currency": "KES",
            "entitlement": entitlement}
    run_request(DEFINE, options={"plan": plan}, maker="maker", checker="checker", run_id=uuid.uuid4().hex)
    run_request(ENROLMENT, options={"plan": code, "target_status": "ACTIVE", "criteria": {"all": [
        {"field": "region", "op": "=", "value": region}]}}, maker="maker", checker="checker", run_id=uuid.uuid4().hex)

    approved(maker, payment_checker, "payment_cycle",
             {"plan": code, "cycle": "S1", "period_start": "2026-09-01", "period_end": "2026-09-30"},
             ["bills:** 6", "total:** 6,500.00 KES", "held over transaction limit:** 1", "max amount:** 1,500.00 KES"],
             not_answering=(checker,), seen_by=seen_by)
    ((held,),) = query("SELECT bill_code FROM payments.bills WHERE plan_code = %s AND status = 'HELD'", code)
    approved(maker, payment_checker, "held_bills_release",
             {"plan": code, "cycle": "S1", "bills": [held], "reason": "top-up confirmed"},
             ["bills released:** 1", "total:** 1,500.00 KES"], not_answering=(checker,), seen_by=seen_by)
    approved(maker, payment_checker, "payroll", {"cycle": "S1", "plan": code, "payment_point": "Agent"},
             ["bills:** 6", "total:** 6,500.00 KES"], not_answering=(checker,), seen_by=seen_by)
    first = payroll_of("S1", code)
    codes = sorted(r for (r,) in query("SELECT bill_code FROM payments.bills WHERE plan_code = %s", code))
    failing = min(set(codes) - {held})

    # A stale row fails the run before any checker is asked, and changes nothing.
    stale = filled_by_provider(database, first, set(), {codes[0]: {"Status": "PAID"}}, suffix="-stale")
    failed_before_approval(maker, "payroll_reconciliation", {"payroll": first, "file": stale})
    assert query("SELECT count(*) FROM ledger.bill_events e JOIN ledger.bills b USING (bill_id)"
                 " WHERE b.plan_code = %s AND e.status <> 'DUE'", code) == [(0,)]

    good = filled_by_provider(database, first, failing={failing})
    approved(maker, payment_checker, "payroll_reconciliation", {"payroll": first, "file": good},
             ["paid:** 5", "paid total:** 5,500.00 KES", "failed:** 1", "failed total:** 1,000.00 KES",
              "bills left open:** 0"], not_answering=(checker,), seen_by=seen_by)
    assert query("SELECT status FROM payments.payrolls WHERE payroll_name = %s", first) == [("RECONCILED",)]
    events = "SELECT count(*) FROM ledger.bill_events e JOIN ledger.bills b USING (bill_id) WHERE b.plan_code = %s"
    before = query(events, code)
    failed_before_approval(maker, "payroll_reconciliation", {"payroll": first, "file": good})  # the same file again
    assert query(events, code) == before

    # A second cycle, its payroll taking the first one's failure, is the same DAGs again: in-process in
    # tests/integration/test_payments_payrolls.py (test_two_payrolls_reconciled_with_failures_moved_and_paid).
    assert query("SELECT count(*), sum(amount_paid) FROM payments.bills WHERE plan_code = %s AND status = 'PAID'",
                 code) == [(5, Decimal("5500.00"))]
    # Traceable from rule to receipt: the held bill, released, paid by the payroll, approved by the payment checker.
    assert query("SELECT b.amount, b.plan_version, p.payroll_name, e.receipt, d.maker, d.checker FROM ledger.bills b"
                 " JOIN ledger.bill_events e USING (bill_id) JOIN ledger.payrolls p USING (payroll_id)"
                 " JOIN ledger.commits c ON c.commit_id = e.commit_id JOIN ledger.decisions d USING (decision_id)"
                 " WHERE b.bill_code = %s AND e.status = 'PAID'", held) == [
        (Decimal("1500.00"), 1, first, f"MP-{held}", "maker", "payment_checker")]

    run_id = maker.trigger("payments_export", {"filter": {"all": [
        {"field": "plan", "op": "=", "value": code}, {"field": "status", "op": "=", "value": "PAID"}]},
        "columns": ["bill_code", "cycle", "amount_paid", "receipt"]}).json()["dag_run_id"]
    assert maker.wait_for_run("payments_export", run_id) == "success"
    ((rows,),) = query("SELECT details->>'rows' FROM ledger.audit_events WHERE action = 'payments.export'"
                       " AND actor = 'maker' AND details::text LIKE %s", f"%{code}%")
    assert rows == "5"


def test_make_up_clears_what_a_payroll_commit_or_an_intake_left_half_done(database, capsys) -> None:
    """`make up` runs the files' recovery as the outbox's owner (the task user, when started as root): here it
    removes a `.partial` file a commit abandoned (benefitflow.payments.payroll.finish_payroll_files; what it does
    for a committed payroll's file: tests/integration/test_commit_guard.py) and an original archived by an intake
    whose transaction never committed (benefitflow.workflows.inputs.remove_unrecorded_originals)."""
    abandoned = payroll_dir() / f"ABANDONED-{uuid.uuid4().hex[:8]}.csv.partial"
    abandoned.write_text("Payroll Name\n")
    (unrecorded_id,) = query("SELECT max(upload_id) + 1000 FROM intake.uploads")[0]
    unrecorded = database.outbox / "uploads" / f"{unrecorded_id:08d}-people.csv"
    unrecorded.write_text("first_name\n")
    for left in (abandoned, unrecorded):
        if os.geteuid() == 0:
            shutil.chown(left, system_users.TASK_USER, system_users.TASK_USER)
        os.utime(left, (time.time() - ABANDONED_PARTIAL_SECONDS - 60,) * 2)
    stack.finish_files(database)
    printed = capsys.readouterr().out.splitlines()
    assert f"  payroll files: removed {abandoned.name}, left by a payroll commit that did not go through" in printed
    assert f"  uploads: removed {unrecorded.name}, archived by an intake that did not go through" in printed
    assert not abandoned.exists() and not unrecorded.exists()
