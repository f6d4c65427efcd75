"""Payments: a cycle, its payroll, the simulated provider's answers, their reconciliation and corrections,
and the checks that every amount adds up."""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.registry import print_digest_cost
from bench.report import Checks, PeakMemory, Stages, print_table, stage_seconds
from bench.settings import (
    CHAIN_TARGET_SECONDS,
    CHECKER,
    CYCLE_CODE,
    FAILED_EVERY,
    FIXED_AMOUNT,
    MAKER,
    MIN_BILLS,
    PERIOD,
    PLAN,
    PLANTED_PER_KIND,
    TOP_UP_AMOUNT,
    TOP_UP_SEX,
    query_one,
)
from bench.small_operations import record_small_operation


@dataclass
class ProviderFile:
    """The provider's filled copy of a payroll file, with what was counted while streaming it."""

    path: Path
    rows: int = 0
    amount: Decimal = Decimal("0.00")  # the `Amount` column as exported
    failed: int = 0
    corrected: list[dict[str, str]] = field(default_factory=list)  # the planted rows as they should have been


def bench_payments(memory: PeakMemory) -> None:
    from benefitflow.payments.payroll import payroll_dir

    checks = Checks()
    bills, cycle_seconds = bench_cycle(memory, checks)
    name, payroll_seconds = bench_payroll(memory, bills)
    payroll_file = payroll_dir() / f"{name}.csv"
    check_control(checks, name, payroll_file, bills)
    filled = simulate_provider(memory, payroll_file, bills[0])
    check_file(checks, filled, bills)
    chain = {"payment_cycle": cycle_seconds, "payroll": payroll_seconds}
    chain["reconciliation"] = bench_reconciliation(memory, checks, name, filled)
    chain["corrections"] = bench_corrections(memory, checks, name, filled)
    check_reconciled(checks, name, bills, filled)
    total = sum(chain.values())
    print(f"\n  payment chain (excl. approvals and the simulated provider): "
          f"{' + '.join(f'{step} {seconds:.1f}' for step, seconds in chain.items())} = {total:.1f} s; "
          f"target <= {CHAIN_TARGET_SECONDS:.0f} s: {'met' if total <= CHAIN_TARGET_SECONDS else 'MISSED'}")
    checks.settle()


def bench_cycle(memory: PeakMemory, checks: Checks) -> tuple[tuple[int, Decimal], float]:
    """The cycle's bills (count, sum) and the seconds it took; check (a) against the rule in plain SQL."""
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.workflows.direct import run_steps

    print(f"\nbenefitflow bench: payment cycle {CYCLE_CODE} ({PERIOD[0]} to {PERIOD[1]}) of plan {PLAN}: "
          f"{FIXED_AMOUNT} KES + {TOP_UP_AMOUNT} if sex = {TOP_UP_SEX}, for every ACTIVE beneficiary")
    stages = Stages(memory)
    options = {"plan": PLAN, "cycle": CYCLE_CODE, "period_start": PERIOD[0], "period_end": PERIOD[1]}
    result = run_steps(CYCLE, options=options, maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex, on_step=stages)
    proposal = result["proposal"]
    print_table(stages.timings, proposal["bills"], "payment cycle (excl. approval)")
    print(f"  outcome: {proposal['bills']:,} bills, total {proposal['total']} (min {proposal['min_amount']}, "
          f"median {proposal['median_amount']}, max {proposal['max_amount']}), "
          f"{proposal['held_over_transaction_limit']:,} held")
    bills, expected = cycle_bills(), rule_in_plain_sql()
    checks("(a) bills = the rule recomputed from the registry", bills == expected,
           f"{bills[0]:,} bills, {bills[1]:,} KES; plain SQL {expected[0]:,} beneficiaries, {expected[1]:,} KES")
    return bills, stage_seconds(stages)


def cycle_bills() -> tuple[int, Decimal]:
    return query_one("SELECT count(*), coalesce(sum(amount), 0) FROM ledger.bills"
                     " WHERE plan_code = %s AND cycle_code = %s", (PLAN, CYCLE_CODE))


def rule_in_plain_sql() -> tuple[int, Decimal]:
    """What the entitlement gives the plan's ACTIVE beneficiaries, without the criteria compiler or dbt."""
    return query_one("SELECT count(*), coalesce(sum(%s + CASE WHEN i.sex = %s THEN %s ELSE 0 END), 0)"
                     " FROM programmes.beneficiaries b JOIN registry.individuals i USING (individual_id)"
                     " WHERE b.plan_code = %s AND b.status = 'ACTIVE'",
                     (FIXED_AMOUNT, TOP_UP_SEX, TOP_UP_AMOUNT, PLAN))


def bench_payroll(memory: PeakMemory, bills: tuple[int, Decimal]) -> tuple[str, float]:
    """The payroll's name and the seconds it took (its file is written by the commit)."""
    from benefitflow.payments.payroll import WORKFLOW as PAYROLL
    from benefitflow.workflows.direct import run_steps

    print(f"\nbenefitflow bench: payroll of cycle {CYCLE_CODE} ({bills[0]:,} DUE bills) and its provider file")
    stages = Stages(memory)
    result = run_steps(PAYROLL, options={"cycle": CYCLE_CODE, "plan": PLAN}, maker=MAKER, checker=CHECKER,
                       run_id=uuid.uuid4().hex, on_step=stages)
    proposal = result["proposal"]
    print_table(stages.timings, proposal["bills"], "payroll (excl. approval)")
    print(f"  outcome: payroll {proposal['payroll']}: {proposal['bills']:,} bills, total {proposal['total']}")
    print_digest_cost(PAYROLL, result, stages)
    return str(proposal["payroll"]), stage_seconds(stages)


def check_control(checks: Checks, name: str, payroll_file: Path, bills: tuple[int, Decimal]) -> None:
    """(b) The control file and the ledger's export record agree with the bills."""
    control = json.loads(payroll_file.with_suffix(".control.json").read_text())
    checks("(b) control file = bills", (control["rows"], Decimal(control["control_total"])) == bills,
           f"{control['rows']:,} rows, {Decimal(control['control_total']):,} KES")
    exported = query_one("SELECT e.row_count, e.control_total FROM ledger.payroll_exports e JOIN ledger.payrolls p"
                         " USING (payroll_id) WHERE p.payroll_name = %s", (name,))
    checks("(b) ledger.payroll_exports = bills", exported == bills, f"{exported[0]:,} rows, {exported[1]:,} KES")


def simulate_provider(memory: PeakMemory, payroll_file: Path, rows: int) -> ProviderFile:
    """The provider's filled file in the inbox, timed apart: it is not part of the platform's chain."""
    from benefitflow.core import config

    if rows < MIN_BILLS:
        raise SystemExit(f"benefitflow bench: {rows} bills are too few for the provider's file (at least {MIN_BILLS})")
    stages = Stages(memory)
    filled = stages("provider file (simulated)", lambda: fill_provider_file(
        payroll_file, config.inbox() / f"{payroll_file.stem}-provider.csv", planted_rows(rows)))
    _, seconds, peak, process = stages.timings[0]
    print(f"  provider file (simulated, not counted): {filled.rows:,} rows streamed in {seconds:.1f} s "
          f"(peak {peak / 2**20:.0f} MB, {process}); {filled.failed:,} answered No, "
          f"{PLANTED_PER_KIND} stale and {PLANTED_PER_KIND} mismatched rows planted")
    return filled


def planted_rows(rows: int) -> dict[int, str]:
    """Row index -> what to spoil, spread evenly through the file (first the stale rows, then the amounts).

    Never a row answered "No": the corrections then pay them, and the FAILED bills stay the planted 2%.
    """
    step = rows // (2 * PLANTED_PER_KIND)
    kinds = ["stale"] * PLANTED_PER_KIND + ["mismatch"] * PLANTED_PER_KIND
    indexes = (position * step + step // 2 for position in range(len(kinds)))
    return {index + (index % FAILED_EVERY == 0): kind for index, kind in zip(indexes, kinds, strict=True)}


def fill_provider_file(payroll_file: Path, target: Path, planted: dict[int, str]) -> ProviderFile:
    """Stream the payroll file into the provider's answers, counting what it wrote (rows, amounts, failures)."""
    from benefitflow_dev.provider_answers import write_answers

    filled = ProviderFile(target)

    def answer(number: int, row: dict[str, str]) -> dict[str, str]:
        index = number - 1
        filled.amount += Decimal(row["Amount"])
        paid = index % FAILED_EVERY != 0
        filled.failed += not paid
        given = {"Paid": "Yes", "Receipt": f"RCPT-{row['Code']}"} if paid else {"Paid": "No", "Receipt": ""}
        if index not in planted:
            return given
        filled.corrected.append({**row, **given})
        return {**given, **spoiled(row, planted[index])}

    filled.rows = write_answers(payroll_file, target, answer, added_columns=())
    return filled


def spoiled(row: dict[str, str], kind: str) -> dict[str, str]:
    if kind == "stale":  # the provider's copy says PAID where the ledger says DUE
        return {"Status": "PAID"}
    return {"Amount": f"{Decimal(row['Amount']) + Decimal('0.01'):.2f}"}


def check_file(checks: Checks, filled: ProviderFile, bills: tuple[int, Decimal]) -> None:
    checks("(b) payroll file rows and Amount column = bills", (filled.rows, filled.amount) == bills,
           f"{filled.rows:,} rows, {filled.amount:,} KES")


def bench_reconciliation(memory: PeakMemory, checks: Checks, name: str, filled: ProviderFile) -> float:
    """The provider's file with skip_invalid_rows: the planted rows refused, their bills left open."""
    print(f"\nbenefitflow bench: reconciliation of {name} from the provider's file ({filled.rows:,} rows, "
          f"{2 * PLANTED_PER_KIND} of them to be refused)")
    result, stages = reconcile(memory, name, filled.path, filled.rows, "reconciliation (excl. approval)")
    proposal = result["proposal"]
    refused = (proposal["invalid_rows"], proposal["stale_rows"], proposal["mismatched_rows"],
               proposal["bills_left_open"])
    checks("refused rows = planted", refused == (2 * PLANTED_PER_KIND, PLANTED_PER_KIND, PLANTED_PER_KIND,
                                                 2 * PLANTED_PER_KIND),
           f"{refused[0]} invalid ({refused[1]} stale, {refused[2]} mismatched), {refused[3]} bills left open")
    return stage_seconds(stages)


def bench_corrections(memory: PeakMemory, checks: Checks, name: str, filled: ProviderFile) -> float:
    """The refused rows as they should have been, in a second small file: every bill of the payroll answered."""
    from benefitflow.core import config

    path = config.inbox() / f"{name}-provider-corrections.csv"
    with path.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.DictWriter(sink, fieldnames=list(filled.corrected[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(filled.corrected)
    print(f"\nbenefitflow bench: reconciliation of {name} from the provider's corrections "
          f"({len(filled.corrected)} rows)")
    result, stages = reconcile(memory, name, path, len(filled.corrected), "corrections (excl. approval)")
    record_small_operation(f"payroll corrections ({len(filled.corrected)} rows)", stages)
    proposal = result["proposal"]
    outcome = (proposal["paid"], proposal["invalid_rows"], proposal["bills_left_open"])
    checks("corrections paid", outcome == (len(filled.corrected), 0, 0),
           f"{outcome[0]} PAID, {outcome[1]} invalid, {outcome[2]} bills left open")
    return stage_seconds(stages)


def reconcile(memory: PeakMemory, name: str, path: Path, rows: int, label: str) -> tuple[dict[str, Any], Stages]:
    from benefitflow.payments.payroll_reconciliation import WORKFLOW
    from benefitflow.workflows.direct import run_steps

    stages = Stages(memory)
    result = run_steps(WORKFLOW, file=path.name, options={"payroll": name, "on_invalid_rows": "skip_invalid_rows"},
                       maker=MAKER, checker=CHECKER, run_id=uuid.uuid4().hex, on_step=stages)
    proposal = result["proposal"]
    print_table(stages.timings, rows, label)
    print(f"  outcome: {proposal['paid']:,} PAID ({proposal['paid_total']}), {proposal['failed']:,} FAILED "
          f"({proposal['failed_total']}); {proposal['invalid_rows']:,} rows refused "
          f"({', '.join(f'{rule} {n:,}' for rule, n in sorted(proposal['invalid_by_rule'].items())) or 'none'}); "
          f"{proposal['bills_left_open']:,} bills left open")
    return result, stages


def check_reconciled(checks: Checks, name: str, bills: tuple[int, Decimal], filled: ProviderFile) -> None:
    """(c) Every bill PAID or FAILED in the published `payments.bills`, as the ledger's latest events say."""
    from benefitflow.core import db
    from benefitflow.payments.payroll import approved_payroll

    print(f"\nbenefitflow bench: payment checks after reconciliation of {name}")
    published = query_one("SELECT count(*), count(*) FILTER (WHERE status = 'PAID'),"
                          " count(*) FILTER (WHERE status = 'FAILED'),"
                          " coalesce(sum(amount_paid) FILTER (WHERE status = 'PAID'), 0)"
                          " + coalesce(sum(amount) FILTER (WHERE status = 'FAILED'), 0)"
                          " FROM payments.bills WHERE plan_code = %s AND cycle_code = %s", (PLAN, CYCLE_CODE))
    total, paid, failed, settled = published
    checks("(c) payments.bills published", total == bills[0], f"{total:,} of {bills[0]:,} bills")
    checks("(c) PAID + FAILED = bills", paid + failed == bills[0], f"{paid:,} PAID + {failed:,} FAILED")
    checks("(c) amount paid + amount failed = bills", settled == bills[1], f"{settled:,} KES of {bills[1]:,} KES")
    planted = len(range(0, bills[0], FAILED_EVERY))
    checks("(c) FAILED = the planted 2%", failed == planted == filled.failed, f"{failed:,} FAILED, {planted:,} planted")
    ledger = latest_events()
    checks("(c) ledger's latest bill events = payments.bills", ledger == (paid, failed),
           f"{ledger[0]:,} PAID, {ledger[1]:,} FAILED")
    with db.transaction() as cur:
        status = (approved_payroll(cur, name) or (None, None))[1]
    checks("(c) payroll RECONCILED (ledger.payroll_events)", status == "RECONCILED", str(status))


def latest_events() -> tuple[int, int]:
    """(PAID, FAILED) by each bill's latest event in the ledger, not through dbt."""
    return query_one("SELECT count(*) FILTER (WHERE status = 'PAID'), count(*) FILTER (WHERE status = 'FAILED')"
                     " FROM (SELECT DISTINCT ON (e.bill_id) e.status FROM ledger.bill_events e"
                     " JOIN ledger.bills b USING (bill_id) WHERE b.plan_code = %s AND b.cycle_code = %s"
                     " ORDER BY e.bill_id, e.commit_id DESC) latest", (PLAN, CYCLE_CODE))
