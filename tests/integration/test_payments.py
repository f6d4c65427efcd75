"""Payment cycles, payrolls and reconciliation on a real PostgreSQL with real dbt: each rule with small data."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from decimal import Decimal
from typing import Any

import pytest

from benefitflow import config, db, exports
from benefitflow.payments.cycle import CYCLE
from benefitflow.payments.export import payments_of
from benefitflow.payments.payroll import PAYROLL, payroll_dir
from benefitflow.payments.reconciliation import WORKFLOW as RECONCILIATION
from benefitflow.payments.release import RELEASE
from benefitflow.programmes.define import DEFINE
from benefitflow.programmes.enrolment import ENROLMENT
from benefitflow.programmes.status import STATUS
from benefitflow.registry.importing import WORKFLOW as INDIVIDUALS
from benefitflow.request_workflow import commit_step, intake_step, propose_step, run_steps, validate_step
from benefitflow.workflow import CommitConflict, WorkflowError, record_direct_decision
from benefitflow.workflow import run_steps as run_upload
from tests.integration.programme_data import HEADER, in_region, plan_document, query, register_region, run, tag


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region()


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
    validated = validate_step(workflow=PAYROLL, request=request, options=waiting, user="maker")
    assert propose_step(workflow=PAYROLL, request=request, validated=validated)["bills"] == 8
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
    proposal = propose_step(workflow=RELEASE, request=request,
                            validated=validate_step(workflow=RELEASE, request=request, options=first_ask, user="maker"))
    released = pay(RELEASE, plan=code, cycle="H1", bills=[held_code], reason="verified by the district officer")
    assert record_direct_decision("held_bills_release", "waiting", run_id, "maker", "payment_checker", proposal,
                                  request_id=request["request_id"])
    with pytest.raises(CommitConflict, match="1 of these bills were released by another run"):
        commit_step(workflow=RELEASE, dag_id="waiting", run_id=run_id, request_id=request["request_id"], user="maker")
    assert (released["proposal"]["bills_released"], released["proposal"]["total"]) == (1, "600.00 KES")
    assert query("SELECT b.status, e.reason, d.checker FROM payments.bills b JOIN ledger.bill_events e USING (bill_id)"
                 " JOIN ledger.commits c USING (commit_id) JOIN ledger.decisions d USING (decision_id)"
                 " WHERE b.bill_code = %s", held_code) == [
        ("DUE", "released: verified by the district officer", "payment_checker")]
    later = pay(PAYROLL, cycle="H1", plan=code)["proposal"]
    assert (later["bills"], later["total"]) == (1, "600.00 KES")
    with pytest.raises(WorkflowError, match="no held bills"):
        pay(RELEASE, plan=code, cycle="H1", reason="again")


def test_a_group_plan_pays_the_households_primary_recipient_not_always_its_head(database, region) -> None:
    name, code = f"RG{tag()}", f"PG-{tag()}"
    first, second = f"G{tag()}", f"G{tag()}"
    rows = [f"Otieno,Odhiambo,1970-01-01,M,{first},0,HEAD,{name},none",
            f"Akinyi,Odhiambo,1975-01-01,F,{first},1,SPOUSE,{name},none",  # the primary recipient
            f"Baraka,Mutua,1960-01-01,M,{second},1,HEAD,{name},none",  # the head is the primary recipient
            f"Zawadi,Mutua,1965-01-01,F,{second},2,SPOUSE,{name},none"]
    (config.inbox() / f"{name}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    run_upload(INDIVIDUALS, file=f"{name}.csv", options={"mode": "create"}, maker="maker", checker="checker",
               run_id=tag())
    run(DEFINE, plan=plan_document(code, type="GROUP", entitlement={"fixed_amount": "800.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [in_region(name)]})
    pay(CYCLE, plan=code, cycle="G1", period_start="2026-05-01", period_end="2026-05-31")
    payroll = pay(PAYROLL, cycle="G1", plan=code)["proposal"]["payroll"]

    paid = {(r["Household Code"], r["First Name"], r["Amount"]) for r in read_rows(payroll)}
    assert paid == {(first, "Akinyi", "800.00"), (second, "Baraka", "800.00")}
    with db.transaction() as cur:
        done = exports.export(cur, payments_of(cur, {}), columns=["household_code", "first_name"],
                              document={"all": [{"field": "plan", "op": "=", "value": code}]},
                              target_dir=database.outbox / "exports", user="maker", label="t")
    with done.path.open(encoding="utf-8", newline="") as handle:
        assert {(r["household_code"], r["first_name"]) for r in csv.DictReader(handle)} == {
            (first, "Akinyi"), (second, "Baraka")}


def test_a_payroll_committed_but_not_yet_published_cannot_be_paid_twice(database, region) -> None:
    code = f"PL-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "10.00"})
    pay(CYCLE, plan=code, cycle="L1", period_start="2026-06-01", period_end="2026-06-30")
    # The first payroll reaches the ledger, but its publish never runs: payments.bills still shows its bills free.
    run_steps(PAYROLL, options={"cycle": "L1", "plan": code}, maker="maker", checker="payment_checker",
              run_id=tag(), on_step=lambda step, action: None if step == "publish" else action())
    assert query("SELECT count(*) FROM payments.bills WHERE plan_code = %s AND payroll_id IS NULL", code) == [(12,)]
    with pytest.raises(CommitConflict, match="12 of these bills were taken by another payroll"):
        pay(PAYROLL, cycle="L1", plan=code)
    assert query("SELECT count(*), count(DISTINCT bill_id) FROM ledger.payroll_bills pb JOIN ledger.bills b"
                 " USING (bill_id) WHERE b.plan_code = %s", code) == [(12, 12)]


def test_bad_payroll_requests_are_refused(database, region) -> None:
    code = f"PQ-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "1.00"})
    pay(CYCLE, plan=code, cycle="Q1", period_start="2026-06-01", period_end="2026-06-30")
    for options, message in [
        ({"cycle": "Q9", "plan": code}, "no bills in cycle Q9"),
        ({"cycle": "Q1", "plan": "NOPE"}, "no benefit plan"),
        ({"cycle": "Q1", "criteria": {"all": [{"field": "role", "op": "=", "value": "HEAD"}]}}, "give the plan too"),
        ({"cycle": "Q1", "plan": code, "criteria": {"all": [{"field": "salary", "op": "=", "value": 1}]}},
         "criteria: .*salary"),
        ({"cycle": "Q1", "plan": code, "include_unpaid_from": "PAYROLL-NONE"}, "no approved payroll"),
    ]:
        with pytest.raises(WorkflowError, match=message):
            pay(PAYROLL, **options)
    assert query("SELECT count(*) FROM ledger.payroll_bills pb JOIN ledger.bills b USING (bill_id)"
                 " WHERE b.plan_code = %s", code) == [(0,)]


def provider_file(inbox_file, name: str, answers: dict[str, tuple[str, str]], *, suffix: str = "",
                  changes: dict[str, dict[str, str]] | None = None, extra_rows: list[dict[str, str]] = ()):
    """The exported payroll file filled in by the provider: answers maps Code -> (Paid, Receipt)."""
    rows = []
    for row in read_rows(name):
        if row["Code"] in answers:
            paid, receipt = answers[row["Code"]]
            rows.append({**row, "Paid": paid, "Receipt": receipt, "Provider Ref": f"TX-{row['Code']}",
                         **(changes or {}).get(row["Code"], {})})
    rows += list(extra_rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*read_rows(name)[0].keys(), "Provider Ref"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return inbox_file(f"{name}{suffix}.csv", buffer.getvalue())


def reconcile(path, payroll: str, **options: Any) -> dict:
    return run_upload(RECONCILIATION, file=path.name, options={"payroll": payroll, "on_invalid_rows": "reject_file",
                                                                **options},
                      maker="maker", checker="payment_checker", run_id=tag())


def test_two_payrolls_reconciled_with_failures_moved_and_paid(database, region, inbox_file) -> None:
    code = f"PX-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "100.00"})
    pay(CYCLE, plan=code, cycle="X1", period_start="2026-07-01", period_end="2026-07-31")
    first = pay(PAYROLL, cycle="X1", plan=code)["proposal"]["payroll"]
    codes = sorted(r["Code"] for r in read_rows(first))
    answers = {c: ("Yes", f"R-{c}") for c in codes[2:]} | {c: ("No", "") for c in codes[:2]}

    result = reconcile(provider_file(inbox_file, first, answers), first)
    assert {k: result["proposal"][k] for k in ("paid", "paid_total", "failed", "failed_total", "bills_left_open")} == {
        "paid": 10, "paid_total": "1,000.00 KES", "failed": 2, "failed_total": "200.00 KES", "bills_left_open": 0}
    assert query("SELECT status, bills_paid, amount_paid, bills_failed FROM payments.payrolls"
                 " WHERE payroll_name = %s", first) == [("RECONCILED", 10, Decimal("1000.00"), 2)]
    assert query("SELECT receipt, provider_row->>'Provider Ref' FROM ledger.bill_events e JOIN ledger.bills b"
                 " USING (bill_id) WHERE b.bill_code = %s", codes[5]) == [(f"R-{codes[5]}", f"TX-{codes[5]}")]

    # The same file again changes nothing; the two failures move into a new payroll and are paid.
    with pytest.raises(WorkflowError, match="reconciled already"):
        reconcile(provider_file(inbox_file, first, answers, suffix="-again"), first)
    second = pay(PAYROLL, cycle="X1", plan=code, include_unpaid_from=first)["proposal"]
    assert (second["bills"], second["moved_from_earlier_payroll"], second["total"]) == (2, 2, "200.00 KES")
    assert sorted(r["Code"] for r in read_rows(second["payroll"])) == codes[:2]
    assert query("SELECT status, payroll_name FROM payments.bills WHERE bill_code = %s", codes[0]) == [
        ("DUE", second["payroll"])]
    reconcile(provider_file(inbox_file, second["payroll"], {c: ("yes", f"R2-{c}") for c in codes[:2]}),
              second["payroll"])
    assert query("SELECT status, count(*), sum(amount_paid) FROM payments.bills WHERE plan_code = %s GROUP BY 1",
                 code) == [("PAID", 12, Decimal("1200.00"))]
    assert query("SELECT status FROM payments.payrolls WHERE payroll_name = %s", second["payroll"]) == [
        ("RECONCILED",)]
    # Traceable from rule to receipt: the bill's plan version and amount, the payroll, the receipt.
    assert query("SELECT b.plan_version, b.amount, p.payroll_name, e.receipt FROM ledger.bills b"
                 " JOIN ledger.bill_events e USING (bill_id) JOIN ledger.payrolls p USING (payroll_id)"
                 " WHERE b.bill_code = %s AND e.status = 'PAID'", codes[0]) == [
        (1, Decimal("100.00"), second["payroll"], f"R2-{codes[0]}")]

    # Found again: the payments export with a filter, and the marts Superset reads.
    with db.transaction() as cur:
        done = exports.export(cur, payments_of(cur, {}), document={"all": [
            {"field": "plan", "op": "=", "value": code}, {"field": "payroll", "op": "=", "value": second["payroll"]},
            {"field": "status", "op": "in", "value": ["PAID"]}, {"field": "region", "op": "=", "value": region}]},
            columns=["bill_code", "status", "amount", "amount_paid", "receipt", "region", "national_id"],
            target_dir=database.outbox / "exports", user="maker", label="t")
    with done.path.open(encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert [(r["bill_code"], r["status"], r["amount"], r["amount_paid"], r["receipt"], r["region"])
            for r in exported] == [(c, "PAID", "100.00", "100.00", f"R2-{c}", region) for c in codes[:2]]
    assert query("SELECT details->>'rows' FROM ledger.audit_events WHERE action = 'payments.export'"
                 " AND object_id = %s", done.path.name) == [("2",)]
    assert query("SELECT bills, amount_due, bills_paid, amount_paid, bills_failed, reconciliation_rate, paid_rate"
                 " FROM marts.mart_payment_cycles WHERE plan_code = %s", code) == [
        (12, Decimal("1200.00"), 12, Decimal("1200.00"), 0, Decimal("1.0000"), Decimal("1.0000"))]
    assert query("SELECT payroll_name, bills, bills_failed, amount_failed, reconciliation_rate FROM marts.mart_payrolls"
                 " WHERE plan_code = %s ORDER BY approved_at", code) == [
        (first, 12, 2, Decimal("200.00"), Decimal("1.0000")), (second["payroll"], 2, 0, Decimal("0.00"),
                                                               Decimal("1.0000"))]
    assert query("SELECT count(*), sum(amount_paid), min(region), count(*) FILTER (WHERE payroll_name = %s)"
                 " FROM marts.mart_payments WHERE plan_code = %s", second["payroll"], code) == [
        (12, Decimal("1200.00"), region, 2)]  # the two failed bills now carry the second payroll's name


def test_bad_provider_files_are_refused_row_by_row_and_change_nothing(database, region, inbox_file) -> None:
    code = f"PY-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "100.00"})
    pay(CYCLE, plan=code, cycle="Y1", period_start="2026-08-01", period_end="2026-08-31")
    name = pay(PAYROLL, cycle="Y1", plan=code, criteria={"all": [{"field": "role", "op": "=", "value": "HEAD"}]}
               )["proposal"]["payroll"]
    other = pay(PAYROLL, cycle="Y1", plan=code)["proposal"]["payroll"]
    codes = sorted(r["Code"] for r in read_rows(name))
    foreign = read_rows(other)[0]
    bad = provider_file(inbox_file, name, {codes[0]: ("Yes", "   "), codes[1]: ("Maybe", "R"), codes[2]: ("Yes", "R"),
                                           codes[3]: ("Yes", "R")},
                        changes={codes[2]: {"Status": "PAID"}, codes[3]: {"Amount": "99.00"}},
                        extra_rows=[{**foreign, "Paid": "Yes", "Receipt": "R", "Payroll Name": name},
                                    {**foreign, "Code": "BL999999999", "Paid": "No", "Payroll Name": name}])
    with pytest.raises(WorkflowError, match="rows are invalid"):
        reconcile(bad, name)
    rules = {(row, rule) for row, rule in query("SELECT row_number, rule FROM intake.row_errors WHERE upload_id ="
                                                " (SELECT max(upload_id) FROM intake.uploads)")}
    assert {(1, "receipt:required"), (2, "paid_answer:column_values_to_be_in_set"), (3, "status:stale"),
            (4, "amount:mismatch"), (5, "code:not_in_payroll"), (6, "code:unknown")} <= rules
    assert query("SELECT count(*) FROM ledger.bill_events e JOIN ledger.bills b USING (bill_id)"
                 " WHERE b.plan_code = %s", code) == [(0,)]
    with pytest.raises(WorkflowError, match="no approved payroll named"):
        reconcile(bad, "PAYROLL-NOPE")
