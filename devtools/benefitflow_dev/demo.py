"""Demo data for a newcomer, loaded once by `make up` through the real workflows.

The demo maker triggers the workflow, the demo checker approves it on Airflow's REST API,
so the demo data shows in the upload history like anything else.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import psycopg2.extensions

from benefitflow.core import db, file_store
from benefitflow_dev import provider_answers
from benefitflow_dev.airflow_client import AirflowClient
from benefitflow_dev.instance import Instance

DEMO_REGISTRY_ROWS = 10_000
DEMO_REGISTRY_FILE = "demo-registry.csv"
DEMO_DATE = date(2026, 1, 1)  # fixed, so the file (and its checksum) is the same on every machine


class DemoError(RuntimeError):
    pass


def load(instance: Instance) -> None:
    """Independent workflows run side by side (each still waits for its checker); dependent ones in order.

    Each phase says how long it took (`make up`'s budget is mostly these workflow runs)."""
    _phase("registry and plans", lambda: load_registry(instance), lambda: define_plans(instance))
    _phase("enrolments, statuses and duplicate people", lambda: load_programmes(instance),
           lambda: search_duplicates(instance))
    _phase("first payment cycle", lambda: load_payments(instance, DEMO_CYCLES[:1]))
    # Grievances name January's failed payments: they run beside February's cycle.
    _phase("second payment cycle and grievances", lambda: load_payments(instance, DEMO_CYCLES),
           lambda: load_grievances(instance))


def _phase(name: str, *steps: Callable[[], None]) -> None:
    started = time.monotonic()
    _at_once(*steps)
    print(f"  demo phase: {name} ({time.monotonic() - started:.1f} s)", flush=True)


def _at_once(*steps: Callable[[], None]) -> None:
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        for future in [pool.submit(step) for step in steps]:
            future.result()  # the first failure stops `make up` with its message


def load_registry(instance: Instance) -> None:
    from benefitflow_dev.synthetic import write_registry_file

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


def search_duplicates(instance: Instance) -> None:
    """The demo registry's duplicate people (the file plants a few), found once by a search of everyone: the Operations
    dashboard's pairs. The nightly search then looks at what changed. One search waits for a checker at a time: a
    nightly run that started meanwhile is approved first (the demo checker answers it)."""
    for _attempt in range(3):
        with db.transaction(instance.app_database_url) as cur:
            cur.execute("SELECT count(*) FROM ledger.duplicate_searches WHERE scope = 'registry'")
            if cur.fetchone()[0]:
                print("  demo duplicate search: already done")
                return
            cur.execute("SELECT dag_id, run_id FROM intake.requests WHERE kind = 'duplicates_search'"
                        " AND status = 'WAITING_FOR_APPROVAL'")
            waiting = cur.fetchall()  # a nightly run that started meanwhile
        for dag_id, run_id in waiting:
            answer_and_wait(instance, dag_id, run_id)
        try:
            run_approved(instance, "duplicates_search", {"scope": "registry"})
            break
        except (DemoError, AssertionError):
            if not _search_waiting(instance):  # refused for another reason: make up stops with it
                raise
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT count(*) FROM ledger.duplicate_candidates")
        print(f"  demo duplicate search: {cur.fetchone()[0]:,} pairs of people kept for review (duplicates_review)")


def _search_waiting(instance: Instance) -> bool:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT 1 FROM intake.requests"
                    " WHERE kind = 'duplicates_search' AND status = 'WAITING_FOR_APPROVAL'")
        return cur.fetchone() is not None


def answer_and_wait(instance: Instance, dag_id: str, run_id: str, *, checker: str = "checker") -> None:
    approver = AirflowClient(instance.airflow_url, checker, instance.user_password(checker))
    approver.wait_until_parked(dag_id, run_id)
    if (answer := approver.answer(dag_id, run_id, "Approve")).status_code != 200:
        raise DemoError(f"approving {dag_id} run {run_id} failed: {answer.status_code} {answer.text[:300]}")
    if (state := approver.wait_for_run(dag_id, run_id, timeout=900)) != "success":
        raise DemoError(f"{dag_id} run {run_id} ended {state}: {approver.task_states(dag_id, run_id)}")


# Two plans a newcomer can look at: who is in them, in which status, and why.
DEMO_PLANS: list[dict[str, object]] = [
    {"code": "DEMO-OAG", "name": "Old-age grant (demo)", "type": "INDIVIDUAL", "valid_from": "2026-01-01",
     "currency": "KES", "payment_frequency": "MONTHLY", "max_beneficiaries": 2000,
     "institution": "Ministry of Social Protection",
     "description": "A monthly grant for people aged 60 and over.",
     "beneficiary_data_schema": {"type": "object", "properties": {
         "pension_number": {"type": "string", "maxLength": 20}}},
     "default_criteria": {"ACTIVE": {"all": [{"field": "age", "op": ">=", "value": 60}]}},
     "entitlement": {"fixed_amount": "2000.00", "top_ups": [
         {"criteria": {"all": [{"field": "disability", "op": "=", "value": "severe"}]}, "amount": "500.00"}]}},
    {"code": "DEMO-HCT", "name": "Household cash transfer (demo)", "type": "GROUP", "valid_from": "2026-01-01",
     "currency": "KES", "payment_frequency": "MONTHLY", "max_beneficiaries": 800,
     "description": "Households of five or more; an amount per child.",
     "default_criteria": {"POTENTIAL": {"all": [{"field": "household_size", "op": ">=", "value": 5}]}},
     "entitlement": {"fixed_amount": "1500.00", "per_member": {
         "amount": "300.00", "criteria": {"all": [{"field": "age", "op": "<", "value": 18}]}, "max_members": 5},
         "cap": "3500.00"}},
]
DEMO_ENROLMENTS: list[dict[str, object]] = [
    {"plan": "DEMO-OAG", "target_status": "ACTIVE", "criteria": {}},
    {"plan": "DEMO-HCT", "target_status": "POTENTIAL", "criteria": {}},
]
DEMO_STATUS_CHANGES: list[dict[str, object]] = [
    {"plan": "DEMO-HCT", "status": "ACTIVE", "reason": "registered at the pay point",
     "criteria": {"all": [{"field": "region", "op": "in", "value": ["North", "East"]}]}},
    {"plan": "DEMO-OAG", "status": "SUSPENDED", "reason": "life certificate not renewed",
     "criteria": {"all": [{"field": "age", "op": ">=", "value": 90}]}},
    {"plan": "DEMO-OAG", "status": "GRADUATED", "reason": "moved abroad",
     "criteria": {"all": [{"field": "region", "op": "=", "value": "West"}, {"field": "sex", "op": "=", "value": "M"}]}},
]


def define_plans(instance: Instance) -> None:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT plan_code FROM ledger.plan_versions WHERE plan_code LIKE 'DEMO-%%'")
        defined = {code for (code,) in cur.fetchall()}
    missing = [{"plan": plan} for plan in DEMO_PLANS if plan["code"] not in defined]
    if missing:
        run_approved_together(instance, "benefit_plan_define", missing)


def load_programmes(instance: Instance) -> None:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT count(DISTINCT plan_code) FROM ledger.beneficiary_versions WHERE plan_code LIKE 'DEMO-%%'")
        if cur.fetchone()[0] == len(DEMO_PLANS):
            print("  demo plans: already loaded")
            return
    run_approved_together(instance, "enrolment", DEMO_ENROLMENTS)
    # A plan's changes in order (each reads the statuses the last one left); the plans side by side.
    _at_once(*(partial(_change_statuses, instance, str(plan["code"])) for plan in DEMO_PLANS))
    print(f"  demo plans: {', '.join(str(p['code']) for p in DEMO_PLANS)} defined, enrolled and moved through "
          "statuses by maker, approved by checker")


def _change_statuses(instance: Instance, plan_code: str) -> None:
    for change in DEMO_STATUS_CHANGES:
        if change["plan"] == plan_code:
            run_approved_together(instance, "beneficiary_status", [change])


# Two monthly cycles of the old-age grant, paid through one provider: January's payroll comes back
# with a few failures, which move into February's payroll; both are reconciled, and February's own
# few failures are left for a next payroll (the Payments dashboard's failed payments).
DEMO_PAYMENTS_PLAN = "DEMO-OAG"
DEMO_CYCLES = (("2026-01", "2026-01-01", "2026-01-31"), ("2026-02", "2026-02-01", "2026-02-28"))
DEMO_PAYMENT_POINT = "M-Pesa (demo)"
DEMO_FAILING_EVERY = (40, 200)  # every 40th row of January's payroll comes back unpaid, every 200th of February's


def load_payments(instance: Instance, cycles: tuple[tuple[str, str, str], ...]) -> None:
    """Bill, pay and reconcile `cycles` (the first ones of DEMO_CYCLES, in order), skipping what is done."""
    if len({_payroll_of(instance, cycle) for cycle, _, _ in cycles} & _reconciled(instance)) == len(cycles):
        if cycles == DEMO_CYCLES:
            print("  demo payments: already loaded")
        return
    unpaid_from = ""
    for number, (cycle, start, end) in enumerate(cycles):
        if not _cycle_billed(instance, cycle):
            run_approved(instance, "payment_cycle", {"plan": DEMO_PAYMENTS_PLAN, "cycle": cycle,
                                                     "period_start": start, "period_end": end},
                         checker="payment_checker")
        payroll = _payroll_of(instance, cycle)
        if payroll is None:
            run_approved(instance, "payroll", {"cycle": cycle, "plan": DEMO_PAYMENTS_PLAN,
                                               "payment_point": DEMO_PAYMENT_POINT,
                                               "include_unpaid_from": unpaid_from}, checker="payment_checker")
            payroll = _payroll_of(instance, cycle)
        if payroll not in _reconciled(instance):
            path = write_provider_file(instance, str(payroll), paid_on=end, failing_every=DEMO_FAILING_EVERY[number],
                                       attempt=_provider_files_sent(instance, str(payroll)))
            run_approved(instance, "payroll_reconciliation",
                         {"payroll": payroll, "file": path.name, "on_invalid_rows": "reject_file"},
                         checker="payment_checker")
        unpaid_from = str(payroll)
    print(f"  demo payments: {', '.join(c for c, _, _ in cycles)} of {DEMO_PAYMENTS_PLAN} billed, paid through "
          f"{DEMO_PAYMENT_POINT} and reconciled (each cycle's payroll takes the last one's failures), by maker, "
          "approved by payment_checker")


def write_provider_file(instance: Instance, payroll: str, *, paid_on: str, failing_every: int, attempt: int) -> Path:
    """The payroll file as a provider sends it back: every `failing_every`-th payment failed, the others paid.

    A file sent before (an interrupted `make up`) cannot be sent again: a later attempt's receipts differ.
    """
    target = instance.inbox / provider_file_name(payroll)
    suffix = f"-{attempt}" if attempt else ""

    def answer(number: int, row: dict[str, str]) -> dict[str, str]:
        if failing_every and number % failing_every == 0:
            return provider_answers.unpaid()
        return provider_answers.paid(row, f"MP{row['Code'][2:]}{suffix}", paid_on)

    # The task user owns the outbox: read the payroll file without following a link it may have put there.
    with file_store.open_in_outbox(f"payrolls/{payroll}.csv", instance.outbox) as payroll_file:
        provider_answers.write_answers(payroll_file.handle, target, answer)
    return target


def provider_file_name(payroll: str) -> str:
    return f"demo-provider-{payroll}.csv"


def _provider_files_sent(instance: Instance, payroll: str) -> int:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT count(*) FROM intake.uploads WHERE file_name = %s", (provider_file_name(payroll),))
        return int(cur.fetchone()[0])


def _cycle_billed(instance: Instance, cycle: str) -> bool:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT 1 FROM ledger.payment_cycles WHERE plan_code = %s AND cycle_code = %s",
                    (DEMO_PAYMENTS_PLAN, cycle))
        return cur.fetchone() is not None


def _payroll_of(instance: Instance, cycle: str) -> str | None:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT payroll_name FROM ledger.payrolls WHERE plan_code = %s AND cycle_code = %s"
                    " AND payment_point = %s ORDER BY payroll_id LIMIT 1", (DEMO_PAYMENTS_PLAN, cycle,
                                                                           DEMO_PAYMENT_POINT))
        found = cur.fetchone()
    return found[0] if found else None


def _reconciled(instance: Instance) -> set[str]:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT p.payroll_name FROM ledger.payrolls p JOIN ledger.payroll_events e USING (payroll_id)"
                    " WHERE e.status = 'RECONCILED' AND p.plan_code = %s", (DEMO_PAYMENTS_PLAN,))
        return {name for (name,) in cur.fetchall()}


# Grievances from people the demo paid or left out: January's failed payments, households still
# POTENTIAL, and a few others; moved along their statuses so every stage (and some overdue) shows.
DEMO_GRIEVANCES_FILE = "demo-grievances.csv"
DEMO_GRIEVANCE_STEPS = (("OPEN", 30, "accepted by the grievance desk"),
                        ("IN_PROGRESS", 20, "case worker assigned"),
                        ("RESOLVED", 12, "resolved: payment re-issued or decision explained"),
                        ("CLOSED", 6, "confirmed with the person"))
DEMO_GRIEVANCE_SOURCES = (
    # (category, channel, title, SQL choosing reporters: individual_id, beneficiary_id)
    ("PAYMENT", "SMS", "Payment not received for January",
     "SELECT b.individual_id, b.beneficiary_id FROM payments.bills b WHERE b.plan_code = 'DEMO-OAG' AND b.bill_id IN"
     " (SELECT bill_id FROM ledger.bill_events WHERE status = 'FAILED') AND b.cycle_code = '2026-01'"
     " ORDER BY b.bill_code LIMIT 15"),
    ("ENROLMENT", "IN_PERSON", "Household registered but not yet paid",
     "SELECT NULL::uuid, beneficiary_id FROM programmes.beneficiaries WHERE plan_code = 'DEMO-HCT'"
     " AND status = 'POTENTIAL' ORDER BY household_code LIMIT 10"),
    ("DATA_CORRECTION", "PHONE", "Date of birth is wrong",
     "SELECT individual_id, NULL::uuid FROM registry.individuals ORDER BY national_id LIMIT 6"),
    ("SERVICE", "COMMUNITY_MEETING", "Long queue at the pay point",
     "SELECT individual_id, NULL::uuid FROM registry.individuals ORDER BY national_id OFFSET 6 LIMIT 5"),
    ("FRAUD", "WEB", "Agent asked for a fee",
     "SELECT individual_id, NULL::uuid FROM registry.individuals ORDER BY national_id OFFSET 11 LIMIT 4"),
)


def load_grievances(instance: Instance) -> None:
    with db.transaction(instance.app_database_url) as cur:
        cur.execute("SELECT count(*) FILTER (WHERE status IN ('APPLIED', 'PARTIALLY_APPLIED')), count(*)"
                    " FROM intake.uploads WHERE kind = 'grievances' AND file_name = %s", (DEMO_GRIEVANCES_FILE,))
        applied, attempts = cur.fetchone()
        if not applied:
            path = _write_grievances_file(cur, instance.inbox / DEMO_GRIEVANCES_FILE, attempt=attempts)
    ran = not applied
    if ran:
        run_approved(instance, "grievances_import", {"file": path.name, "on_invalid_rows": "reject_file"})
    for status, count, comment in DEMO_GRIEVANCE_STEPS:
        with db.transaction(instance.app_database_url) as cur:
            cur.execute("SELECT g.grievance_code FROM ledger.grievances g JOIN intake.uploads u USING (upload_id)"
                        " WHERE u.file_name = %s AND NOT EXISTS (SELECT 1 FROM ledger.grievance_events e"
                        " WHERE e.grievance_id = g.grievance_id AND e.status = %s)"
                        " AND g.row_number <= %s ORDER BY g.row_number", (DEMO_GRIEVANCES_FILE, status, count))
            codes = [code for (code,) in cur.fetchall()]
        if codes:
            run_approved(instance, "grievance_status", {"grievances": codes, "status": status, "comment": comment})
            ran = True
    if not ran:
        print("  demo grievances: already loaded")
        return
    print("  demo grievances: 40 tickets imported and moved along (OPEN, IN_PROGRESS, RESOLVED, CLOSED) by maker, "
          "approved by checker")


def _write_grievances_file(cur: psycopg2.extensions.cursor, path: Path, *, attempt: int) -> Path:
    rows: list[dict[str, object]] = []
    for category, channel, title, reporters in DEMO_GRIEVANCE_SOURCES:
        cur.execute(reporters)
        for individual_id, beneficiary_id in cur.fetchall():
            number = len(rows)
            received = DEMO_DATE + timedelta(days=31 + 3 * number)
            rows.append({"individual_id": individual_id or "", "beneficiary_id": beneficiary_id or "",
                         "title": title + (f" (attempt {attempt + 1})" if attempt else ""), "description": "",
                         "category": category, "channel": channel,
                         "priority": "HIGH" if category in ("PAYMENT", "FRAUD") else "NORMAL",
                         "incident_date": received - timedelta(days=2), "received_on": received})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_approved(instance: Instance, dag_id: str, conf: dict[str, object], *, checker: str = "checker") -> str:
    return run_approved_together(instance, dag_id, [conf], checker=checker)[0]


def run_approved_together(instance: Instance, dag_id: str, confs: list[dict[str, object]], *,
                          checker: str = "checker") -> list[str]:
    """Trigger one run per conf as the maker, approve each as the checker, wait until all succeed."""
    maker = AirflowClient(instance.airflow_url, "maker", instance.user_password("maker"))
    approver = AirflowClient(instance.airflow_url, checker, instance.user_password(checker))
    maker.wait_for_dag(dag_id)
    run_ids = []
    for conf in confs:
        response = maker.trigger(dag_id, conf)
        if response.status_code != 200:
            raise DemoError(f"triggering {dag_id} failed: {response.status_code} {response.text[:300]}")
        run_ids.append(response.json()["dag_run_id"])
    for run_id in run_ids:
        maker.wait_until_parked(dag_id, run_id)
        answer = approver.answer(dag_id, run_id, "Approve")
        if answer.status_code != 200:
            raise DemoError(f"approving {dag_id} run {run_id} failed: {answer.status_code} {answer.text[:300]}")
    for run_id in run_ids:
        state = maker.wait_for_run(dag_id, run_id, timeout=900)
        if state != "success":
            raise DemoError(f"{dag_id} run {run_id} ended {state}: {maker.task_states(dag_id, run_id)}")
    return run_ids
