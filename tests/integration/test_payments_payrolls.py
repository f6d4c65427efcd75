"""Payrolls and their reconciliation on a real PostgreSQL with real dbt: each rule with small data."""

from __future__ import annotations

import csv
import hashlib
import io
from decimal import Decimal
from typing import Any

import pytest

from benefitflow.core import config, db
from benefitflow.core.errors import CommitConflict, WorkflowError
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payments_export import payments_of
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll import payroll_dir
from benefitflow.payments.payroll_reconciliation import WORKFLOW as RECONCILIATION
from benefitflow.payments.payroll_reconciliation import bills_left_open
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows import export_files
from benefitflow.workflows.direct import run_steps
from benefitflow.workflows.direct import run_steps as run_upload
from tests.integration.payments_data import define_and_activate, pay, read_control, read_rows
from tests.integration.programme_data import HEADER, in_region, plan_document, query, register_region, run, tag


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region()


def test_a_group_plan_pays_the_households_primary_recipient_not_always_its_head(database, region) -> None:
    name, code = f"RG{tag()}", f"PG-{tag()}"
    first, second = f"G{tag()}", f"G{tag()}"
    rows = [f"Otieno,Odhiambo,1970-01-01,M,{first},0,HEAD,{name},none",
            f"Akinyi,Odhiambo,1975-01-01,F,{first},1,SPOUSE,{name},none",  # the primary recipient
            f"-Baraka,Mutua,1960-01-01,M,{second},1,HEAD,{name},none",  # the head is the primary recipient
            f"Zawadi,Mutua,1965-01-01,F,{second},2,SPOUSE,{name},none"]
    (config.inbox() / f"{name}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    run_upload(INDIVIDUALS, file=f"{name}.csv", options={"mode": "create"}, maker="maker", checker="checker",
               run_id=tag())
    run(DEFINE, plan=plan_document(code, type="GROUP", entitlement={"fixed_amount": "800.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [in_region(name)]})
    pay(CYCLE, plan=code, cycle="G1", period_start="2026-05-01", period_end="2026-05-31")
    payroll = pay(PAYROLL, cycle="G1", plan=code)["proposal"]["payroll"]
    assert payroll.startswith(f"PAYROLL-G1-{code}-")  # the name providers see and send back

    # A name beginning with '-' is written as text a spreadsheet does not evaluate; amounts stay numbers.
    paid = {(r["Household Code"], r["First Name"], r["Amount"]) for r in read_rows(payroll)}
    assert paid == {(first, "Akinyi", "800.00"), (second, "'-Baraka", "800.00")}
    control, file = read_control(payroll), payroll_dir() / f"{payroll}.csv"
    assert (control["rows"], control["control_total"]) == (2, "1600.00")
    assert control["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert {path.stat().st_mode & 0o777 for path in (file, file.with_suffix(".control.json"))} == {0o640}
    with db.transaction() as cur:
        done = export_files.export(cur, payments_of(cur, {}), columns=["household_code", "first_name"],
                                   document={"all": [{"field": "plan", "op": "=", "value": code}]},
                                   target_dir=database.outbox / "exports", user="maker", label="t")
    with done.path.open(encoding="utf-8", newline="") as handle:
        assert {(r["household_code"], r["first_name"]) for r in csv.DictReader(handle)} == {
            (first, "Akinyi"), (second, "'-Baraka")}


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
        done = export_files.export(cur, payments_of(cur, {}), document={"all": [
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


def open_bills(payroll: str) -> tuple[int, int]:
    """(the open bills the ledger keeps for the payroll, the same counted from its bills and their events)."""
    return query(
        "SELECT (SELECT min(o.open_bills) FROM ledger.payroll_open_bills o WHERE o.payroll_id = p.payroll_id),"
        "       (SELECT count(*) FROM ledger.payroll_bills pb WHERE pb.payroll_id = p.payroll_id AND NOT EXISTS ("
        "            SELECT FROM ledger.bill_events e WHERE e.bill_id = pb.bill_id AND e.payroll_id = pb.payroll_id"
        "            AND e.status IN ('PAID', 'FAILED')))"
        " FROM ledger.payrolls p WHERE p.payroll_name = %s", payroll)[0]


def test_a_payroll_reconciled_file_by_file_counts_down_its_open_bills(database, region, inbox_file) -> None:
    code = f"PO-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "100.00"})
    pay(CYCLE, plan=code, cycle="O1", period_start="2026-07-01", period_end="2026-07-31")
    payroll = pay(PAYROLL, cycle="O1", plan=code)["proposal"]["payroll"]
    codes = sorted(r["Code"] for r in read_rows(payroll))
    assert open_bills(payroll) == (12, 12)

    first = reconcile(provider_file(inbox_file, payroll, {c: ("Yes", f"R-{c}") for c in codes[:5]}), payroll)
    assert first["proposal"]["bills_left_open"] == 7
    assert open_bills(payroll) == (7, 7)
    assert query("SELECT status FROM payments.payrolls WHERE payroll_name = %s", payroll) == [("APPROVED_FOR_PAYMENT",)]
    # Commit ids are handed out before the payroll lock: a commit that took the lock later may have the
    # lower id. Its count (here 3, under the cycle's commit id) is still the latest: the smallest.
    with pytest.raises(RuntimeError, match="rolled back"), db.transaction() as cur:
        cur.execute("INSERT INTO ledger.payroll_open_bills (payroll_id, commit_id, open_bills)"
                    " SELECT p.payroll_id, min(c.commit_id), 3 FROM ledger.payrolls p, ledger.commits c"
                    " WHERE p.payroll_name = %s AND c.commit_id < p.commit_id GROUP BY p.payroll_id RETURNING payroll_id",
                    (payroll,))
        assert bills_left_open(cur, RECONCILIATION.proposal_for({"upload_id": -1}), payroll_id=cur.fetchone()[0]) == 3
        raise RuntimeError("rolled back")

    rest = {c: ("No", "") for c in codes[5:]}
    second = reconcile(provider_file(inbox_file, payroll, rest, suffix="-rest"), payroll)
    assert second["proposal"]["bills_left_open"] == 0
    assert open_bills(payroll) == (0, 0)
    assert query("SELECT status FROM payments.payrolls WHERE payroll_name = %s", payroll) == [("RECONCILED",)]


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
