"""Incremental state: a publish rewrites only the rows its commit touched, and a full rebuild gives the same rows.

Operations of every kind run through the real workflows (registry create and update, plan, enrolment,
status change, payment cycle, payroll, reconciliation with failures moved to a second payroll, held
bills released, grievances, a merge of duplicate records and its unmerge); then every state table is kept aside, `dbt run --full-refresh` rebuilds
them from the ledger, and the two must be equal row for row.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg2 import sql

from benefitflow.core import config, dbt_runner
from benefitflow.grievances.grievance_status import WORKFLOW as GRIEVANCE_STATUS
from benefitflow.grievances.grievances_import import WORKFLOW as GRIEVANCES
from benefitflow.payments.held_bills_release import WORKFLOW as RELEASE
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll_reconciliation import WORKFLOW as RECONCILIATION
from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
from benefitflow.registry.duplicates_review import WORKFLOW as REVIEW
from benefitflow.registry.duplicates_search import WORKFLOW as SEARCH
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows import publish
from benefitflow.workflows.direct import run_steps as run_upload
from benefitflow_dev.invariants import rebuild_differences, state_tables
from tests.integration.payments_data import define_and_activate, pay, read_rows
from tests.integration.programme_data import in_region, query, register_region, run, tag


@pytest.fixture(scope="module")
def region(database) -> str:
    return register_region()


def upload(workflow: Any, name: str, content: str, checker: str = "checker", **options: Any) -> dict:
    path = config.inbox() / f"{uuid.uuid4().hex[:10]}-{name}"
    path.write_text(content)
    return run_upload(workflow, file=path.name, options=options, maker="maker", checker=checker, run_id=tag())


def provider_answers(payroll: str, failed: int) -> str:
    """The payroll file as the provider returns it: the first `failed` bills not paid, the others paid."""
    rows = read_rows(payroll)
    header = list(rows[0])
    lines = [",".join(header)]
    for number, row in enumerate(sorted(rows, key=lambda r: r["Code"])):
        paid = number >= failed
        row = {**row, "Paid": "Yes" if paid else "No", "Receipt": f"R-{row['Code']}" if paid else ""}
        lines.append(",".join(row[column] for column in header))
    return "\n".join(lines) + "\n"


def reconcile(payroll: str, failed: int) -> dict:
    return upload(RECONCILIATION, f"{payroll}.csv", provider_answers(payroll, failed), checker="payment_checker",
                  payroll=payroll, on_invalid_rows="reject_file")


class Rows:
    """Which rows of a table a publish rewrote: a rewritten row has a new transaction id (xmin); a table
    rebuilt whole has a new relation id."""

    def __init__(self, table: str, key: str) -> None:
        self.table, self.key = table, key
        self.relation, self.versions = self._read()

    def _read(self) -> tuple[int, dict[str, str]]:
        relation = query("SELECT %s::regclass::oid", self.table)[0][0]
        rows = query(sql.SQL("SELECT {}::text, xmin::text FROM {}").format(
            sql.Identifier(self.key), sql.Identifier(*self.table.split("."))))
        return relation, dict(rows)

    def rewritten(self) -> set[str]:
        relation, versions = self._read()
        assert relation == self.relation, f"{self.table} was rebuilt whole, not incrementally"
        return {key for key, version in versions.items() if self.versions.get(key) != version}


def test_publishes_rewrite_only_what_commits_touched_and_a_full_rebuild_gives_the_same_rows(database, region) -> None:
    code = f"IS-{tag()}"
    define_and_activate(region, code, {"fixed_amount": "100.00", "transaction_limit": "550.00", "top_ups": [
        {"criteria": {"all": [{"field": "disability", "op": "=", "value": "severe"}]}, "amount": "500.00"}]})
    pay(CYCLE, plan=code, cycle="C1", period_start="2026-07-01", period_end="2026-07-31")
    [(held,)] = query("SELECT bill_code FROM payments.bills WHERE plan_code = %s AND status = 'HELD'", code)
    pay(RELEASE, plan=code, cycle="C1", bills=[held], reason="verified")
    first = pay(PAYROLL, cycle="C1", plan=code)["proposal"]["payroll"]
    plan_bills = {str(b) for (b,) in query("SELECT bill_id FROM payments.bills WHERE plan_code = %s", code)}
    assert len(plan_bills) == 12 and query("SELECT count(*) FROM payments.bills")[0][0] >= 12

    # A reconciliation rewrites its payroll's bills, in the state and in the mart, and no person or household.
    bills, payments = Rows("payments.bills", "bill_id"), Rows("marts.mart_payments", "bill_code")
    individuals, households = Rows("registry.individuals", "individual_id"), Rows("registry.households", "household_code")
    reconcile(first, failed=3)
    assert bills.rewritten() == plan_bills
    assert len(payments.rewritten()) == 12
    assert individuals.rewritten() == set() and households.rewritten() == set()

    # One person moves to another household of the region: that person, the two households, and the
    # bills whose recipient those households or that person are, are rewritten; no other row.
    person, old_household = query("SELECT individual_id::text, household_code FROM registry.individuals"
                                  " WHERE region = %s AND role = 'DAUGHTER' ORDER BY 1 LIMIT 1", region)[0]
    new_household = query("SELECT household_code FROM registry.households WHERE region = %s AND household_code <> %s"
                          " ORDER BY 1 LIMIT 1", region, old_household)[0][0]
    bills, payments = Rows("payments.bills", "bill_id"), Rows("marts.mart_payments", "bill_code")
    individuals, households = Rows("registry.individuals", "individual_id"), Rows("registry.households", "household_code")
    upload(INDIVIDUALS, "move.csv", f"id,group_code\n{person},{new_household}\n", mode="update")
    assert individuals.rewritten() == {person}
    assert households.rewritten() == {old_household, new_household}
    assert bills.rewritten() == set()
    assert payments.rewritten() == {c for (c,) in query(
        "SELECT bill_code FROM payments.bills WHERE individual_id = %s OR household_code IN (%s, %s)",
        person, old_household, new_household)}

    # Then one operation of every other kind, and the state must equal a rebuild from the ledger.
    second = pay(PAYROLL, cycle="C1", plan=code, include_unpaid_from=first)["proposal"]["payroll"]
    reconcile(second, failed=0)
    # A birthday is not a commit: a head born in 1980 whose row was last built in 2014 (then 34) is in
    # another age band at the next publish of the mart, whatever that publish is about.
    [(head,)] = query("SELECT b.beneficiary_id::text FROM programmes.beneficiaries b JOIN registry.individuals i"
                      " USING (individual_id) WHERE b.plan_code = %s AND i.role = 'HEAD' AND i.dob = '1980-01-02'",
                      code)
    query("UPDATE marts.mart_beneficiaries SET age_band = '18-34' WHERE beneficiary_id = %s RETURNING 1", head)
    query("UPDATE publishing.taken_in_commits SET taken_in_at = '2014-06-01' WHERE model = 'marts.mart_beneficiaries'"
          " RETURNING 1")
    run(STATUS, plan=code, status="SUSPENDED", reason="moved away", criteria={"all": [
        in_region(region), {"field": "role", "op": "=", "value": "SPOUSE"}]})
    assert query("SELECT age_band FROM marts.mart_beneficiaries WHERE beneficiary_id = %s", head) == [("35-59",)]
    upload(INDIVIDUALS, "rename.csv", f"id,last_name\n{person},Renamed\n", mode="update")
    grievances = upload(GRIEVANCES, "grievances.csv", "individual_id,title,category,channel\n"
                        f"{person},Not paid,payment,phone\n", on_invalid_rows="reject_file")
    [(ticket,)] = query("SELECT grievance_code FROM ledger.grievances WHERE upload_id = %s", grievances["upload_id"])
    run(GRIEVANCE_STATUS, grievances=[ticket], status="OPEN", comment="accepted")
    # The person with the ticket registered again and the two merged, the new record surviving: the ticket and the
    # person's enrolment follow, and so does the bill of the next cycle (billed once: nothing to cancel), paid to the
    # survivor; an unmerge gives back the ticket and the enrolment, not the payment made to the survivor.
    pay(CYCLE, plan=code, cycle="C2", period_start="2026-08-01", period_end="2026-08-31")
    first_name, last_name, dob, sex, location = query("SELECT first_name, last_name, dob::text, sex, location_code"
                                                      " FROM registry.individuals WHERE individual_id = %s", person)[0]
    upload(INDIVIDUALS, "again.csv", f"first_name,last_name,dob,sex,location_code,region\n"
           f"{first_name},{last_name},{dob},{sex},{location},{region}\n", mode="create", on_invalid_rows="reject_file")
    run(SEARCH, scope="changed")
    [(candidate,)] = query("SELECT candidate_id FROM registry.duplicate_candidates WHERE status = 'OPEN'"
                           " AND %s IN (individual_a::text, individual_b::text)", person)
    run(REVIEW, decision="CONFIRM", reason="registered twice", candidates=[candidate], survivor="newer")
    [(survivor,)] = query("SELECT survivor_id::text FROM registry.duplicate_candidates WHERE candidate_id = %s",
                          candidate)
    assert survivor != person
    assert query("SELECT filed_for_individual_id::text, individual_id::text FROM grievances.grievances"
                 " WHERE grievance_code = %s", ticket) == [(person, survivor)]
    next_bill = ("SELECT bill_code, status, individual_id::text FROM payments.bills"
                 " WHERE billed_individual_id = %s AND cycle_code = 'C2' AND plan_code = %s")
    [(bill_code, status, payee)] = query(next_bill, person, code)
    assert (status, payee) == ("DUE", survivor)
    third = pay(PAYROLL, cycle="C2", plan=code)["proposal"]["payroll"]
    assert {row["Code"]: row["Individual Id"] for row in read_rows(third)}[bill_code] == survivor
    unmerged = run(REVIEW, decision="UNMERGE", reason="two people after all", candidates=[candidate])["proposal"]
    # out for payment to the survivor, the bill stays the survivor's (the unmerge's checker is told)
    assert unmerged["bills_paid_to_the_survivor_while_merged"] == 1
    assert query(next_bill, person, code) == [(bill_code, "DUE", survivor)]
    assert query("SELECT individual_id::text FROM grievances.grievances WHERE grievance_code = %s",
                 ticket) == [(person,)]

    tables = state_tables(excluding="selftest")  # other modules commit self-tests without publishing meanwhile
    assert {("payments", "bills"), ("registry", "individuals"), ("marts", "mart_payments")} <= set(tables)
    differences = rebuild_differences(tables)
    assert differences == {}, f"incremental state differs from a full rebuild (rows only before, only after): {differences}"


def test_a_change_that_is_a_large_share_of_the_state_rebuilds_it_whole(database, region, monkeypatch) -> None:
    """Row by row, a change of a quarter of a table costs more than writing the table again: the publish
    rebuilds the models whole (a new relation), with the same rows."""
    person = query("SELECT individual_id::text FROM registry.individuals WHERE region = %s ORDER BY 1 LIMIT 1",
                   region)[0][0]
    relation = query("SELECT 'grievances.grievances'::regclass::oid")[0][0]
    monkeypatch.setattr(publish, "LARGE_CHANGE_MIN_ROWS", 1)
    monkeypatch.setattr(publish, "LARGE_CHANGE_SHARE", 0.0)
    upload(GRIEVANCES, "grievances.csv", f"individual_id,title,category,channel\n{person},Whole,payment,phone\n",
           on_invalid_rows="reject_file")
    assert query("SELECT 'grievances.grievances'::regclass::oid")[0][0] != relation
    assert query("SELECT status FROM grievances.grievances WHERE title = 'Whole' AND individual_id = %s",
                 person) == [("RECEIVED",)]


def test_totals_are_not_added_to_a_table_with_no_record_of_the_commits_they_count(database, region) -> None:
    """Payment cycles add their new commits' bills to the totals they hold: with the record of which commits
    those totals count gone, every commit would be counted again, so the run refuses (make rebuild)."""
    if not query("SELECT 1 FROM payments.payment_cycles LIMIT 1"):
        code = f"TG-{tag()}"
        define_and_activate(region, code, {"fixed_amount": "10.00"})
        pay(CYCLE, plan=code, cycle="C1", period_start="2026-08-01", period_end="2026-08-31")
    record = query("DELETE FROM publishing.taken_in_commits WHERE model = 'payments.payment_cycles'"
                   " RETURNING model, commit_id, take_in, taken_in_at")
    try:
        with pytest.raises(dbt_runner.DbtError, match=r"(?s)payment_cycles \(error: .*holds totals but no record of the commits they count: rebuild it whole"):
            dbt_runner.run(["run", "--select", "payment_cycles"])
    finally:
        for row in record:
            query("INSERT INTO publishing.taken_in_commits (model, commit_id, take_in, taken_in_at)"
                  " VALUES (%s, %s, %s, %s) RETURNING 1", *row)
    assert dbt_runner.run(["run", "--select", "payment_cycles"])[0].status == "success"
