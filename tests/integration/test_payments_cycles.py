"""Payment cycles, held bills and a payroll taking due bills, on a real PostgreSQL with real dbt: each rule with small data."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from benefitflow.core.errors import CommitConflict, WorkflowError
from benefitflow.payments.held_bills_release import WORKFLOW as RELEASE
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll import payroll_dir
from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.workflows.commit import commit_step
from benefitflow.workflows.direct import record_direct_decision
from benefitflow.workflows.intake import intake_step
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.validate import validate_step
from tests.integration.payments_data import bills, define_and_activate, pay, read_control, read_rows
from tests.integration.programme_data import plan_document, query, register_region, run, tag


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region()


def test_a_cycle_bills_active_beneficiaries_by_the_rule_and_holds_those_over_the_limit(database, region) -> None:
    code = f"PC-{tag()}"
    # Heads get 1,000 + 250 per child under 18 in the household (one each) + 500 if severely disabled;
    # the limit holds the disabled head's 1,750.
    define_and_activate(region, code, {
        "fixed_amount": "1000.00",
        "per_member": {"amount": "250.00", "criteria": {"all": [{"field": "age", "op": "<", "value": 18}]},
                       "max_members": 5},
        "top_ups": [{"criteria": {"all": [{"field": "disability", "op": "=", "value": "severe"}]},
                     "amount": "500.00"}],
        "transaction_limit": "1500.00"})
    run(STATUS, plan=code, status="SUSPENDED", reason="moved away",
        criteria={"all": [{"field": "role", "op": "=", "value": "SPOUSE"}]})

    result = pay(CYCLE, plan=code, cycle="2026-01", period_start="2026-01-01", period_end="2026-01-31")
    proposal = result["proposal"]
    assert (proposal["bills"], proposal["total"], proposal["held_over_transaction_limit"]) == (8, "10,500.00 KES", 1)
    assert (proposal["min_amount"], proposal["median_amount"], proposal["max_amount"]) == (
        "1,250.00 KES", "1,250.00 KES", "1,750.00 KES")
    assert proposal["previous_cycle"] is None
    # Suspended spouses get no bill; every member of a household counts its children.
    assert bills(code, "2026-01") == [
        *[("DAUGHTER", "Njeri", Decimal("1250.00"), "DUE")] * 4,
        *[("HEAD", "Wanjiru", Decimal("1250.00"), "DUE")] * 3,
        ("HEAD", "Wanjiru", Decimal("1750.00"), "HELD"),
    ]
    assert query("SELECT bills, total_amount, bills_held FROM payments.payment_cycles WHERE plan_code = %s",
                 code) == [(8, Decimal("10500.00"), 1)]

    # A re-run bills only the newly active; the bills already made stay as they were.
    run(STATUS, plan=code, status="ACTIVE", reason="came back",
        criteria={"all": [{"field": "role", "op": "=", "value": "SPOUSE"}]})
    run(DEFINE, plan=plan_document(code, entitlement={"fixed_amount": "7.00"}))
    again = pay(CYCLE, plan=code, cycle="2026-01", period_start="2026-01-01", period_end="2026-01-31")
    assert (again["proposal"]["bills"], again["proposal"]["already_billed_in_this_cycle"]) == (4, 8)
    assert query("SELECT amount, plan_version, count(*) FROM payments.bills WHERE plan_code = %s"
                 " GROUP BY 1, 2 ORDER BY 1", code) == [
        (Decimal("7.00"), 2, 4), (Decimal("1250.00"), 1, 7), (Decimal("1750.00"), 1, 1)]

    nothing_left = pay(CYCLE, plan=code, cycle="2026-01", period_start="2026-01-01", period_end="2026-01-31")
    assert nothing_left["proposal"]["bills"] == 0

    following = pay(CYCLE, plan=code, cycle="2026-02", period_start="2026-02-01", period_end="2026-02-28")
    assert following["proposal"]["previous_cycle"] == "2026-01"
    assert following["proposal"]["difference_from_previous_cycle"] == "-10,444.00 KES"


def test_bad_cycle_requests_are_refused_before_any_checker_sees_them(database, region) -> None:
    code = f"PB-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "10.00"})
    pay(CYCLE, plan=code, cycle="C1", period_start="2026-03-01", period_end="2026-03-31")
    for options, message in [
        ({"plan": "NOPE", "cycle": "C9"}, "no benefit plan"),
        ({"cycle": "bad code!"}, "cycle: a code of 1 to 30"),
        ({"cycle": "C2", "period_start": "2026-02-30"}, "period_start: not a date"),
        ({"cycle": "C2", "period_start": "2026-05-01", "period_end": "2026-04-01"}, "is before period_start"),
        ({"cycle": "C1", "period_start": "2026-03-01", "period_end": "2026-03-30"}, "a re-run keeps that period"),
        ({"cycle": "C2", "period_start": "2026-03-15", "period_end": "2026-04-14"}, "overlaps cycle C1"),
        ({"cycle": "C2", "period_start": "2025-06-01", "period_end": "2025-06-30"}, "outside plan"),
    ]:
        request = {"plan": code, "period_start": "2026-04-01", "period_end": "2026-04-30", **options}
        with pytest.raises(WorkflowError, match=message):
            pay(CYCLE, **request)
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(12,)]
    assert query("SELECT count(*) FROM intake.requests WHERE plan_code = %s AND kind = 'payment_cycle'"
                 " AND status = 'INVALID'", code) == [(6,)]


def test_a_rejected_cycle_bills_nobody(database, region) -> None:
    code = f"PR-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "10.00"})
    result = run(CYCLE, checker=None, plan=code, cycle="C1", period_start="2026-03-01", period_end="2026-03-31")
    assert "commit" not in result
    assert query("SELECT status FROM intake.requests WHERE request_id = %s", result["request_id"]) == [("REJECTED",)]
    assert query("SELECT count(*) FROM ledger.bills WHERE plan_code = %s", code) == [(0,)]
    assert query("SELECT count(*) FROM ledger.payment_cycles WHERE plan_code = %s", code) == [(0,)]


def test_a_payroll_takes_due_bills_once_and_writes_the_provider_file(database, region) -> None:
    code = f"PP-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "100.00", "top_ups": [
        {"criteria": {"all": [{"field": "disability", "op": "=", "value": "severe"}]}, "amount": "50.25"}]})
    pay(CYCLE, plan=code, cycle="M1", period_start="2026-05-01", period_end="2026-05-31")

    heads = pay(PAYROLL, cycle="M1", plan=code, payment_point="Agent Kisumu",
                criteria={"all": [{"field": "role", "op": "=", "value": "HEAD"}]})
    name = heads["proposal"]["payroll"]
    assert (heads["proposal"]["bills"], heads["proposal"]["total"]) == (4, "450.25 KES")
    assert query("SELECT status, bills, total_amount, payment_point FROM payments.payrolls WHERE payroll_name = %s",
                 name) == [("APPROVED_FOR_PAYMENT", 4, Decimal("450.25"), "Agent Kisumu")]
    rows = read_rows(name)
    assert list(rows[0])[:11] == ["Payroll Name", "Payroll Status", "First Name", "Last Name", "Date of Birth", "Code",
                                  "Status", "Amount", "Type", "Receipt", "Paid"]
    assert sorted(r["Amount"] for r in rows) == ["100.00", "100.00", "100.00", "150.25"]
    assert {(r["Payroll Name"], r["Status"], r["First Name"], r["Receipt"], r["Paid"]) for r in rows} == {
        (name, "DUE", "Wanjiru", "", "")}
    control = read_control(name)
    assert (control["rows"], control["control_total"]) == (4, "450.25")
    assert query("SELECT sha256, row_count, control_total FROM ledger.payroll_exports e JOIN ledger.payrolls p"
                 " USING (payroll_id) WHERE p.payroll_name = %s", name) == [
        (control["sha256"], 4, Decimal("450.25"))]
    assert control["sha256"] == hashlib.sha256((payroll_dir() / f"{name}.csv").read_bytes()).hexdigest()
    assert (payroll_dir() / f"{name}.csv").stat().st_mode & 0o777 == 0o640
    assert not (payroll_dir() / f"{name}.csv.partial").exists()  # put in place once committed

    # A payroll waiting for approval holds its bills; a rejected one leaves them free.
    waiting = {"cycle": "M1", "plan": code}
    run_id = tag()
    request = intake_step(workflow=PAYROLL, options=waiting, user="maker", dag_id="waiting", run_id=run_id)
    validated = validate_step(workflow=PAYROLL, taken=request, options=waiting, user="maker")
    assert propose_step(workflow=PAYROLL, taken=request, validated=validated)["bills"] == 8
    held = run(PAYROLL, checker=None, cycle="M1", plan=code)["proposal"]
    assert (held["bills"], held["held_by_another_payroll_waiting_for_approval"]) == (0, 8)
    with pytest.raises(CommitConflict, match="nothing to pay"):  # an empty payroll is never approved into the ledger
        pay(PAYROLL, cycle="M1", plan=code)
    assert not record_direct_decision("payroll", "waiting", run_id, "maker", None, {}, request_id=request["request_id"])
    rejected = run(PAYROLL, checker=None, cycle="M1", plan=code)
    assert rejected["proposal"]["bills"] == 8
    assert query("SELECT status FROM intake.requests WHERE request_id = %s", rejected["request_id"]) == [("REJECTED",)]
    rest = pay(PAYROLL, cycle="M1", plan=code)
    assert (rest["proposal"]["bills"], rest["proposal"]["total"]) == (8, "800.00 KES")
    with pytest.raises(WorkflowError, match="no bills to pay: none of cycle M1's bills of plan"):
        pay(PAYROLL, cycle="M1", plan=code)
    assert query("SELECT status, bills FROM payments.payrolls WHERE payroll_name = %s", validated["payroll"]) == [
        ("REJECTED", 0)]
    assert query("SELECT count(*), count(DISTINCT bill_id) FROM ledger.payroll_bills pb JOIN ledger.bills b"
                 " USING (bill_id) WHERE b.plan_code = %s", code) == [(12, 12)]


def test_a_held_bill_waits_for_its_own_release_then_a_payroll_takes_it(database, region) -> None:
    code = f"PH-{tag()}"
    # The severely disabled head's 600.00 is over the 300.00 limit; everyone else gets 100.00.
    define_and_activate(region, code, {"fixed_amount": "100.00", "transaction_limit": "300.00", "top_ups": [
        {"criteria": {"all": [{"field": "disability", "op": "=", "value": "severe"}]}, "amount": "500.00"}]})
    pay(CYCLE, plan=code, cycle="H1", period_start="2026-07-01", period_end="2026-07-31")
    [(held_code,)] = query("SELECT bill_code FROM payments.bills WHERE plan_code = %s AND status = 'HELD'", code)
    [(due_code,)] = query("SELECT min(bill_code) FROM payments.bills WHERE plan_code = %s AND status = 'DUE'", code)
    assert pay(PAYROLL, cycle="H1", plan=code)["proposal"]["total"] == "1,100.00 KES"

    for options, message in [
        ({"bills": ["BL999999999"]}, "BL999999999: no bill of cycle H1"),
        ({"bills": [due_code, held_code]}, f"{due_code}: DUE, not held"),
        ({"cycle": "H9"}, "no held bills in cycle H9"),
        ({"reason": " "}, "give a reason"),
        ({"bills": "all"}, "bills: a list of bill codes"),
    ]:
        with pytest.raises(WorkflowError, match=message):
            pay(RELEASE, **{"plan": code, "cycle": "H1", "reason": "checked", **options})
    rejected = run(RELEASE, checker=None, plan=code, cycle="H1", bills=[held_code], reason="checked")
    assert "commit" not in rejected
    assert query("SELECT status FROM payments.bills WHERE bill_code = %s", held_code) == [("HELD",)]

    # Two asks for the same bill: whichever is committed second is refused, the bill released once.
    first_ask = {"plan": code, "cycle": "H1", "bills": [held_code], "reason": "first ask"}
    run_id = tag()
    request = intake_step(workflow=RELEASE, options=first_ask, user="maker", dag_id="waiting", run_id=run_id)
    proposal = propose_step(workflow=RELEASE, taken=request,
                            validated=validate_step(workflow=RELEASE, taken=request, options=first_ask, user="maker"))
    released = pay(RELEASE, plan=code, cycle="H1", bills=[held_code], reason="verified by the district officer")
    assert record_direct_decision("held_bills_release", "waiting", run_id, "maker", "payment_checker", proposal,
                                  request_id=request["request_id"])
    with pytest.raises(CommitConflict, match="1 of these bills were released by another run"):
        commit_step(workflow=RELEASE, dag_id="waiting", run_id=run_id, taken=request, user="maker")
    assert (released["proposal"]["bills_released"], released["proposal"]["total"]) == (1, "600.00 KES")
    assert query("SELECT b.status, e.reason, d.checker FROM payments.bills b JOIN ledger.bill_events e USING (bill_id)"
                 " JOIN ledger.commits c USING (commit_id) JOIN ledger.decisions d USING (decision_id)"
                 " WHERE b.bill_code = %s", held_code) == [
        ("DUE", "released: verified by the district officer", "payment_checker")]
    later = pay(PAYROLL, cycle="H1", plan=code)["proposal"]
    assert (later["bills"], later["total"]) == (1, "600.00 KES")
    with pytest.raises(WorkflowError, match="no held bills"):
        pay(RELEASE, plan=code, cycle="H1", reason="again")
