"""`make bench`: each capability at scale, stage by stage, on a throwaway PostgreSQL.

    make bench                  # 1,000,000 individuals in households
    BENCH_ROWS=100000 make bench

1. Registry import of a synthetic file of BENCH_ROWS people.

The file has realistic names, dates and variables with a few per cent invalid, duplicate
and likely-duplicate rows. The import runs the code the `individuals_import` DAG runs
(intake, validation with duplicate checks, proposal, commit, publish) with
`skip_invalid_rows`; the approval is recorded by the bench as a checker (a human's wait is
not part of the figures). The floor is a bare COPY of the same file into an unlogged table.
Peak memory is sampled from every process of the run (this one and PostgreSQL's).

2. Enrolment: the registry is topped up to BENCH_ROWS people (a clean file, not timed), a plan
is defined, and everyone a two-condition filter selects is enrolled (`enrolment` workflow).

3. Payments: the plan's entitlement is 1,000.00 KES plus a 250.50 top-up for women. A payment
cycle bills every ACTIVE beneficiary (`payment_cycle`), a payroll takes the bills and writes the
provider's file (`payroll`), the provider's answers come back (`payroll_reconciliation` with
`skip_invalid_rows`), then a small file correcting the rows refused in the first. The provider is
simulated (not counted): the payroll file is streamed row by row into a filled copy, Paid "Yes"
with a receipt for 98% and "No" for every 50th row, with 5 stale rows (Status changed) and 5
mismatched amounts (+0.01) the reconciliation must refuse. The chain (cycle, payroll, both
reconciliations, without approvals) is compared with issue 17's 60 s target. The bench fails unless the
bills add up to the rule recomputed in plain SQL from the registry, the payroll file's control
total and rows match the bills, and after reconciliation every bill is PAID or FAILED, paid plus
failed adds up to the bills to the cent, the FAILED bills are the planted 2% and the payroll is
RECONCILED.

4. Grievances: one ticket per 20 people (50,000 at a million), reported by individuals and, for
the plan's beneficiaries, by their beneficiary id, across every category, channel and priority,
imported by the `grievances_import` workflow. Then the individual record
(`marts.mart_individual_record`, a view) is read for 20 people who have a plan, bills and a
grievance, by id and by name, as the Superset dashboard's native filters read it.

5. Ten rows of each kind: a registry update of 10 people, a status change of 10 beneficiaries,
a status change of 10 grievance tickets, and the 10-row corrections file of step 3. Above 10,000
people the same bench runs again at 10,000 people (in a process and database of its own, its
output kept in the bench folder) and each operation's time is given as a ratio to it (target
<= 1.5x, and <= 2 s at 10,000).
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
MAKER, CHECKER = "bench-maker", "bench-checker"
PLAN = "BENCH"
# More than a fixed amount, so bills differ by person and check (a) recomputes each from the registry.
FIXED_AMOUNT, TOP_UP_AMOUNT, TOP_UP_SEX = Decimal("1000.00"), Decimal("250.50"), "F"
ENTITLEMENT = {
    "fixed_amount": str(FIXED_AMOUNT),
    "top_ups": [{"criteria": {"all": [{"field": "sex", "op": "=", "value": TOP_UP_SEX}]},
                 "amount": str(TOP_UP_AMOUNT)}],
    "transaction_limit": "100000.00",  # above every bill: none held, so every bill goes into the payroll
}
CYCLE_CODE, PERIOD = "BENCH-1", ("2026-01-01", "2026-01-31")  # inside the plan's validity (from 2026-01-01)
FAILED_EVERY = 50  # the provider answers "No" for every 50th row: 2% FAILED
PLANTED_PER_KIND = 5  # stale rows and mismatched amounts each: refused, then corrected in a second file
MIN_BILLS = 100  # room for the planted rows between the "No" answers
CHAIN_TARGET_SECONDS = 60.0  # issue 17; an earlier issue asked for 120 s
PEOPLE_PER_GRIEVANCE = 20
RECORD_SAMPLE = 20
SMALL_ROWS = 10
REFERENCE_ROWS = 10_000
SMALL_RATIO_TARGET, SMALL_SECONDS_TARGET = 1.5, 2.0
REFERENCE_OUT = os.environ.get("BENCH_REFERENCE_OUT")  # set for the 10,000-people run: where its figures go
SMALL_OPERATIONS: dict[str, tuple[float, float]] = {}  # operation -> (seconds excl. approval, of which publish)


class PeakMemory:
    """Largest resident memory of any process of the run, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.peak_process = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> tuple[int, str]:
        found = (self.peak_bytes, self.peak_process)
        self.peak_bytes, self.peak_process = 0, ""
        return found

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            for process in psutil.process_iter(["pid", "name", "memory_info"]):
                info = process.info
                if info["pid"] != me and not (info["name"] or "").startswith("postgres"):
                    continue
                rss = info["memory_info"].rss if info["memory_info"] else 0
                if rss > self.peak_bytes:
                    self.peak_bytes, self.peak_process = rss, "bench (python)" if info["pid"] == me else "postgres"


def main() -> None:
    from benefitflow.platform import postgres, stack
    from benefitflow.platform.instance import Instance

    home = Path(tempfile.mkdtemp(prefix="benefitflow-bench-", dir="/tmp"))
    home.chmod(0o755)
    instance = Instance.throwaway(home)
    os.environ.update(instance.benefitflow_env())
    try:
        try:
            stack.prepare_database(instance)
            stack.build_dbt(instance)
            instance.inbox.mkdir(parents=True, exist_ok=True)
            load_as_a_task_starts()
            run(instance)
        finally:
            postgres.stop(instance)
        # The 10,000-people run goes after this run's PostgreSQL stopped: nothing else on the machine then.
        print_small_operations(reference_figures(instance))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def load_as_a_task_starts() -> None:
    """What Airflow's fork server loads once for all tasks (platform.instance.TASK_PRELOAD: GX, the parsed dbt
    project, the workflows) is loaded here before anything is timed: a task starts with it, so no step pays it."""
    from benefitflow.platform.instance import TASK_PRELOAD

    began = time.perf_counter()
    loaded = [module for module in TASK_PRELOAD if not module.startswith(("airflow.", "benefitflow_plugin"))]
    for module in loaded:  # (Airflow's own modules want its services)
        importlib.import_module(module)
    print(f"  loaded as Airflow's fork server loads it for every task (not timed): {', '.join(loaded)} "
          f"({time.perf_counter() - began:.1f} s)")


def run(instance: Any) -> None:
    with PeakMemory() as memory:
        committed = bench_registry_import(instance, memory)
        top_up_registry(instance, ROWS - committed)
        bench_enrolment(memory)
        bench_payments(memory)
        bench_grievances(memory)
        bench_individual_record()
        bench_small_operations(memory)


class Stages:
    """Times each step of a run (`on_step` of run_steps) with the peak memory during it."""

    def __init__(self, memory: PeakMemory) -> None:
        self.memory = memory
        self.timings: list[tuple[str, float, int, str]] = []

    def __call__(self, step: str, action: Callable[[], Any]) -> Any:
        self.memory.reset()
        began = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - began
        time.sleep(0.3)  # one more memory sample
        self.timings.append((step, seconds, *self.memory.reset()))
        return result


def bench_registry_import(instance: Any, memory: PeakMemory) -> int:
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.synthetic import write_registry_file
    from benefitflow.workflows.direct import run_steps

    path = instance.inbox / "bench-registry.csv"
    started = time.perf_counter()
    generated = write_registry_file(path, ROWS)
    print(f"\nbenefitflow bench: registry import of {ROWS:,} individuals in {generated.households:,} households "
          f"({path.stat().st_size / 1e6:.0f} MB; generated in {time.perf_counter() - started:.1f} s)")
    print(f"  planted: {generated.invalid_rows:,} invalid, {generated.duplicate_rows:,} duplicate national ids, "
          f"{generated.likely_duplicate_rows:,} likely duplicates")

    stages = Stages(memory)
    stages("floor: bare COPY, unlogged table", lambda: copy_floor(path))
    result = run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
                       maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex, on_step=stages)
    floor, *steps = stages.timings
    print_table(steps, ROWS, "whole import (excl. approval)", floor=floor)
    proposal = result["proposal"]
    print(f"  outcome: {proposal['valid_rows']:,} valid, {proposal['invalid_rows']:,} invalid rows "
          f"({', '.join(f'{rule} {n:,}' for rule, n in sorted(proposal['invalid_by_rule'].items()))}); "
          f"{proposal['likely_duplicates']:,} likely duplicates shown to the checker; "
          f"{result['commit']['rows']:,} individuals committed")
    print_digest_cost(WORKFLOW.operation, WORKFLOW.propose.model, stages, upload_id=int(result["upload_id"]))
    return int(result["commit"]["rows"])


def print_digest_cost(operation: str, proposal_model: str, stages: Stages, *, upload_id: int | None = None,
                      request_id: int | None = None) -> None:
    """What the proposal digest costs (computed again here, as the approve and commit steps do) against propose."""
    from benefitflow import db, proposal_digest
    from benefitflow.proposal_digest import ProposalRef

    proposal = ProposalRef(operation, f"proposals.{proposal_model}", upload_id=upload_id, request_id=request_id)
    with db.transaction() as cur:
        began = time.perf_counter()
        proposal_digest.compute(cur, proposal)
        seconds = time.perf_counter() - began
        cur.execute(f"SELECT count(*) FROM {proposal.table} WHERE {'request_id' if request_id else 'upload_id'} = %s",
                    (request_id or upload_id,))
        rows = cur.fetchone()[0]
    propose = next(step_seconds for step, step_seconds, _, _ in stages.timings if step == "propose")
    print(f"  proposal digest of {rows:,} rows: {seconds:.2f} s = {100 * seconds / propose:.1f} % of the propose step "
          f"({propose:.1f} s, digest included; target under 10 %)")


def top_up_registry(instance: Any, rows: int) -> None:
    """Clean people (no planted errors) so the registry holds about ROWS individuals; not timed."""
    from benefitflow.registry.individuals_import import WORKFLOW
    from benefitflow.synthetic import write_registry_file
    from benefitflow.workflows.direct import run_steps

    if rows <= 0:
        return
    path = instance.inbox / "bench-registry-top-up.csv"
    write_registry_file(path, rows, seed=7, invalid_share=0.0, duplicate_share=0.0, likely_duplicate_share=0.0,
                        household_prefix="TU")
    run_steps(WORKFLOW, file=path.name, options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
              maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex)


def bench_enrolment(memory: PeakMemory) -> None:
    from benefitflow import db
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
    from benefitflow.synthetic import PLACES_BY_REGION
    from benefitflow.workflows.direct import run_steps

    regions = list(PLACES_BY_REGION)
    criteria = {"all": [{"field": "age", "op": ">=", "value": 0}, {"field": "region", "op": "in", "value": regions}]}
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM registry.individuals")
        registry_size = int(cur.fetchone()[0])
    plan = {"code": PLAN, "name": "Bench plan", "type": "INDIVIDUAL", "valid_from": "2026-01-01",
            "currency": "KES", "entitlement": ENTITLEMENT}
    run_steps(DEFINE, options={"plan": plan}, maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex)
    print(f"\nbenefitflow bench: enrolment into an INDIVIDUAL plan of a registry of {registry_size:,} individuals, "
          f"filter: age >= 0 and region in ({', '.join(regions)})")
    stages = Stages(memory)
    result = run_steps(ENROLMENT, options={"plan": "BENCH", "target_status": "ACTIVE", "criteria": criteria},
                       maker="bench-maker", checker="bench-checker", run_id=uuid.uuid4().hex, on_step=stages)
    print_table(stages.timings, result["commit"]["rows"], "whole enrolment (excl. approval)")
    proposal = result["proposal"]
    print(f"  outcome: {proposal['matching']:,} matching, {proposal['would_be_added']:,} enrolled ACTIVE")


class Checks:
    """Each check printed as it is made; the bench fails at the end if any did not hold."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def __call__(self, label: str, holds: bool, detail: str) -> None:
        print(f"  check {label}: {detail}: {'ok' if holds else 'FAILED'}")
        if not holds:
            self.failed.append(f"{label} ({detail})")

    def settle(self) -> None:
        if self.failed:
            raise SystemExit("benefitflow bench: payment checks failed: " + "; ".join(self.failed))


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
    print_digest_cost(PAYROLL.operation, PAYROLL.propose.model, stages, request_id=int(result["request_id"]))
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
    from benefitflow import config

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
    from benefitflow.payments.provider_answers import write_answers

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
    from benefitflow import config

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
    from benefitflow import db
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


def bench_grievances(memory: PeakMemory) -> None:
    from benefitflow import config
    from benefitflow.grievances.grievances_import import WORKFLOW as GRIEVANCES
    from benefitflow.workflows.direct import run_steps

    tickets = max(ROWS // PEOPLE_PER_GRIEVANCE, 100)
    path = config.inbox() / f"bench-grievances-{uuid.uuid4().hex[:8]}.csv"
    write_grievances_file(path, tickets)
    print(f"\nbenefitflow bench: grievances import of {tickets:,} tickets from the registry's people "
          f"and the plan's beneficiaries")
    stages = Stages(memory)
    result = run_steps(GRIEVANCES, file=path.name, options={"on_invalid_rows": "reject_file"}, maker=MAKER,
                       checker=CHECKER, run_id=uuid.uuid4().hex, on_step=stages)
    print_table(stages.timings, tickets, "grievances import (excl. approval)")
    print(f"  outcome: {result['commit']['rows']:,} tickets recorded, "
          f"{result['proposal']['invalid_rows']:,} invalid rows")


def write_grievances_file(path: Path, tickets: int) -> None:
    """Streamed out of PostgreSQL with COPY: every tenth ticket is reported by a beneficiary of the plan."""
    from psycopg2 import sql

    from benefitflow import db
    from benefitflow.grievances.grievances_import import CHANNELS, PRIORITIES, categories

    category_codes = sorted(categories())
    query = sql.SQL("""
        COPY (
            SELECT people.individual_id,
                   CASE WHEN people.n % 10 = 0 THEN beneficiaries.beneficiary_id END AS beneficiary_id,
                   'Bench ticket ' || people.n AS title, '' AS description,
                   ({categories})[(1 + people.n % {category_count})::int] AS category,
                   ({channels})[(1 + people.n % {channel_count})::int] AS channel,
                   ({priorities})[(1 + people.n % {priority_count})::int] AS priority,
                   date '2026-02-01' + (people.n % 28)::int AS incident_date,
                   date '2026-03-01' + (people.n % 28)::int AS received_on
            FROM (SELECT individual_id, row_number() OVER (ORDER BY individual_id) AS n
                  FROM registry.individuals ORDER BY individual_id LIMIT {tickets}) AS people
            LEFT JOIN programmes.beneficiaries AS beneficiaries
                   ON beneficiaries.individual_id = people.individual_id AND beneficiaries.plan_code = {plan}
        ) TO STDOUT WITH (FORMAT csv, HEADER true)""").format(
        categories=sql.Literal(category_codes), category_count=sql.Literal(len(category_codes)),
        channels=sql.Literal(list(CHANNELS)), channel_count=sql.Literal(len(CHANNELS)),
        priorities=sql.Literal(list(PRIORITIES)), priority_count=sql.Literal(len(PRIORITIES)),
        tickets=sql.Literal(tickets), plan=sql.Literal(PLAN))
    with db.transaction() as cur, path.open("w", encoding="utf-8") as handle:
        cur.copy_expert(query.as_string(cur), handle)


def bench_individual_record() -> None:
    from benefitflow import db

    with db.transaction() as cur:
        cur.execute(
            "SELECT g.individual_id, i.first_name || ' ' || i.last_name FROM ledger.grievances g"
            " JOIN registry.individuals i USING (individual_id)"
            " JOIN programmes.beneficiaries b ON b.individual_id = g.individual_id"
            " WHERE g.beneficiary_id IS NOT NULL ORDER BY g.grievance_code LIMIT %s", (RECORD_SAMPLE,))
        people = cur.fetchall()
        print(f"\nbenefitflow bench: the individual record of {len(people)} people with a plan, bills and a "
              "grievance (marts.mart_individual_record)")
        for label, column, index in (("by individual id", "individual_id", 0), ("by name", "full_name", 1)):
            timings, rows = [], 0
            for person in people:
                began = time.perf_counter()
                cur.execute(f"SELECT * FROM marts.mart_individual_record WHERE {column} = %s", (person[index],))
                rows += len(cur.fetchall())
                timings.append((time.perf_counter() - began) * 1000)
            timings.sort()
            print(f"  {label:<18} median {timings[len(timings) // 2]:7.1f} ms   slowest {timings[-1]:7.1f} ms"
                  f"   {rows / len(people):.1f} lines per record")


def bench_small_operations(memory: PeakMemory) -> None:
    """Ten rows of each kind, through the same steps as the DAGs (approval excluded)."""
    from benefitflow.grievances.grievance_status import WORKFLOW as GRIEVANCE_STATUS
    from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
    from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
    from benefitflow.workflows.direct import run_steps as run_request
    from benefitflow.workflows.direct import run_steps as run_upload

    print(f"\nbenefitflow bench: {SMALL_ROWS} rows of each kind in a registry of {ROWS:,} people")
    people = first_values("SELECT individual_id FROM registry.individuals ORDER BY individual_id LIMIT %s")
    update = inbox_file("bench-small-update.csv", ["id,last_name", *(f"{person},Corrected" for person in people)])
    timed_small_operation("registry update", memory, lambda on_step: run_upload(
        INDIVIDUALS, file=update, options={"mode": "update", "on_invalid_rows": "reject_file"}, maker=MAKER,
        checker=CHECKER, run_id=uuid.uuid4().hex, on_step=on_step))
    beneficiaries = first_values("SELECT beneficiary_id FROM programmes.beneficiaries WHERE status = 'ACTIVE'"
                                 " AND plan_code = %s ORDER BY beneficiary_id LIMIT %s", PLAN)
    chosen = inbox_file("bench-small-status.csv", ["beneficiary_id", *beneficiaries])
    timed_small_operation("beneficiary status change", memory, lambda on_step: run_request(
        STATUS, options={"plan": PLAN, "status": "SUSPENDED", "reason": "bench", "file": chosen}, maker=MAKER,
        checker=CHECKER, run_id=uuid.uuid4().hex, on_step=on_step))
    tickets = first_values("SELECT grievance_code FROM grievances.grievances WHERE status = 'RECEIVED'"
                           " ORDER BY grievance_code LIMIT %s")
    timed_small_operation("grievance status change", memory, lambda on_step: run_request(
        GRIEVANCE_STATUS, options={"grievances": tickets, "status": "OPEN", "comment": "bench"}, maker=MAKER,
        checker=CHECKER, run_id=uuid.uuid4().hex, on_step=on_step))
    if REFERENCE_OUT:
        Path(REFERENCE_OUT).write_text(json.dumps(SMALL_OPERATIONS))


def first_values(query: str, *parameters: Any) -> list[str]:
    """The first SMALL_ROWS values the query gives (its last parameter is the LIMIT); exactly that many."""
    from benefitflow import db

    with db.transaction() as cur:
        cur.execute(query, (*parameters, SMALL_ROWS))
        values = [str(value) for (value,) in cur.fetchall()]
    if len(values) != SMALL_ROWS:
        raise RuntimeError(f"the bench needs {SMALL_ROWS} rows for a small operation, found {len(values)}: {query}")
    return values


def inbox_file(name: str, lines: list[str]) -> str:
    from benefitflow import config

    path = config.inbox() / f"{uuid.uuid4().hex[:8]}-{name}"
    path.write_text("\n".join(lines) + "\n")
    return path.name


def timed_small_operation(label: str, memory: PeakMemory, run: Callable[[Stages], Any]) -> None:
    stages = Stages(memory)
    run(stages)
    record_small_operation(f"{label} ({SMALL_ROWS} rows)", stages)


def record_small_operation(label: str, stages: Stages) -> None:
    SMALL_OPERATIONS[label] = (stage_seconds(stages), sum(s for step, s, _, _ in stages.timings if step == "publish"))


def reference_figures(instance: Any) -> dict[str, tuple[float, float]] | None:
    """The same bench at 10,000 people, in a process and database of its own (above 10,000 people only)."""
    if ROWS <= REFERENCE_ROWS or REFERENCE_OUT:
        return None
    out, log = instance.home / "reference.json", instance.home / "reference.log"
    print(f"\nbenefitflow bench: the same at {REFERENCE_ROWS:,} people, for the ratios", flush=True)
    with log.open("w") as sink:
        done = subprocess.run([sys.executable, "-m", "bench.run"], stdout=sink, stderr=subprocess.STDOUT, check=False,
                              env={**os.environ, "BENCH_ROWS": str(REFERENCE_ROWS), "BENCH_REFERENCE_OUT": str(out)})
    if done.returncode != 0 or not out.exists():
        print(f"  the {REFERENCE_ROWS:,}-people run failed (exit {done.returncode}); its last lines:\n"
              + "".join(log.read_text().splitlines(keepends=True)[-20:]))
        return None
    return {label: tuple(figures) for label, figures in json.loads(out.read_text()).items()}


def print_small_operations(reference: dict[str, tuple[float, float]] | None) -> None:
    if not SMALL_OPERATIONS:
        return
    print(f"\nbenefitflow bench: {SMALL_ROWS}-row operations at {ROWS:,} people (seconds excl. approval; publish)")
    header = f"  {'operation':<40} {'seconds':>8} {'publish':>8}"
    print(header + (f" {f'at {REFERENCE_ROWS:,}':>10} {'ratio':>7}" if reference else ""))
    for label, (seconds, publish) in SMALL_OPERATIONS.items():
        line = f"  {label:<40} {seconds:8.2f} {publish:8.2f}"
        if reference and label in reference:
            small = reference[label][0]
            verdict = "met" if seconds / small <= SMALL_RATIO_TARGET and small <= SMALL_SECONDS_TARGET else "MISSED"
            line += f" {small:10.2f} {seconds / small:6.2f}x  {verdict}"
        print(line)
    if reference:
        print(f"  target: <= {SMALL_RATIO_TARGET}x the same at {REFERENCE_ROWS:,} people, and <= "
              f"{SMALL_SECONDS_TARGET:.0f} s there")


def latest_events() -> tuple[int, int]:
    """(PAID, FAILED) by each bill's latest event in the ledger, not through dbt."""
    return query_one("SELECT count(*) FILTER (WHERE status = 'PAID'), count(*) FILTER (WHERE status = 'FAILED')"
                     " FROM (SELECT DISTINCT ON (e.bill_id) e.status FROM ledger.bill_events e"
                     " JOIN ledger.bills b USING (bill_id) WHERE b.plan_code = %s AND b.cycle_code = %s"
                     " ORDER BY e.bill_id, e.commit_id DESC) latest", (PLAN, CYCLE_CODE))


def query_one(query: str, parameters: tuple[Any, ...]) -> Any:
    from benefitflow import db

    with db.transaction() as cur:
        cur.execute(query, parameters)
        return tuple(cur.fetchone())


def stage_seconds(stages: Stages) -> float:
    return sum(seconds for _, seconds, _, _ in stages.timings)


def copy_floor(path: Path) -> None:
    from psycopg2 import sql

    from benefitflow import db
    from benefitflow.synthetic import HEADER

    with db.transaction() as cur:
        columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in HEADER)
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE intake.bench_floor ({})").format(columns))
        with path.open("rb") as handle:
            cur.copy_expert("COPY intake.bench_floor FROM STDIN WITH (FORMAT csv, HEADER true)", handle, size=1 << 20)
        cur.execute("DROP TABLE intake.bench_floor")


def print_table(steps: list[tuple[str, float, int, str]], rows: int, total_label: str,
                floor: tuple[str, float, int, str] | None = None) -> None:
    total = sum(seconds for _, seconds, _, _ in steps)
    peak = max(steps, key=lambda t: t[2])
    print(f"\n  {'stage':<34} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}  heaviest process")
    for step, seconds, peak_bytes, process in ([floor] if floor else []) + steps + [
            (total_label, total, peak[2], peak[3])]:
        print(f"  {step:<34} {seconds:8.1f} {rows / seconds:12,.0f} {peak_bytes / 2**20:8.0f}  {process}")
    if floor:
        print(f"  {total_label} / bare COPY floor: {total / floor[1]:.1f}x")


if __name__ == "__main__":
    main()
