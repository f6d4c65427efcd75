"""`make soak`: makers and checkers at work at once for a bounded time, then the invariants checked (issue 24).

    make soak                                   # 20 makers for 10 minutes
    SOAK_MAKERS=5 SOAK_MINUTES=2 make soak

Throwaway PostgreSQL and Airflow services on loopback (as `make bench-airflow` starts them). Each maker, in a thread
of its own, triggers one operation after another through the REST API and waits for its run to end, until the time
is up: an individuals import of a few new people, a self-test upload, an export of names (approved first), a payroll
of a cycle every maker asks to pay (its bills go to one payroll; the others are refused), and an individuals file
with invalid rows (refused). Two checkers (`checker`, `payment_checker`) answer every request as it parks.

Printed: operations ended and committed per minute; p50/p95 from trigger to committed (the commit step's end);
refusals of bad input (expected) and other failures; steps retried; deadlocks PostgreSQL counted (in every
database: the platform's and Airflow's); then the invariants (benefitflow_dev.invariants), the full rebuild of the
state included. The figures are printed, not asserted; the exit status is 1 when a run failed for something other
than its input, a deadlock was counted, or an invariant broke.
"""

from __future__ import annotations

import io
import math
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bench.airflow import services_running

if TYPE_CHECKING:
    from benefitflow_dev.airflow_client import AirflowClient
    from benefitflow_dev.instance import Instance

MAKERS = int(os.environ.get("SOAK_MAKERS", "20"))
MINUTES = float(os.environ.get("SOAK_MINUTES", "10"))
DRAIN_MINUTES = 15  # for the runs still going when the time is up
PEOPLE_PER_FILE = 6
PAYROLL_CYCLES = 4  # a cycle billed per few minutes of soak, so payrolls keep meeting each other
OPERATIONS = ("individuals_import", "platform_selftest", "registry_export", "payroll", "individuals_import",
              "refused_import")


@dataclass
class Ended:
    operation: str
    dag_id: str
    run_id: str
    triggered_at: datetime
    ended_at: datetime
    state: str


@dataclass(frozen=True)
class Soak:
    instance: Instance
    region: str
    plan: str
    deadline: float
    api_errors: Counter = field(default_factory=Counter)  # requests the API server failed, by status


def main() -> int:
    with services_running("soak") as instance:
        with redirect_stdout(io.StringIO()):  # dbt's lines, model by model
            region, plan = _programme(instance)
        print(f"\nSoak: {MAKERS} makers for {MINUTES:g} minutes ({instance.executor} executor, "
              f"{os.cpu_count()} cores)\n")
        deadlocks_before = _deadlocks()
        soak = Soak(instance, region, plan, time.monotonic() + MINUTES * 60)
        ended: list[Ended] = []
        makers = [threading.Thread(target=_maker, args=(soak, number, ended), daemon=True) for number in range(MAKERS)]
        answering = threading.Event()
        checkers = threading.Thread(target=_checkers, args=(instance, answering), daemon=True)
        checkers.start()
        for maker in makers:
            maker.start()
        for maker in makers:
            maker.join(timeout=MINUTES * 60 + DRAIN_MINUTES * 60)
        answering.set()
        checkers.join()
        return _report(instance, ended, _deadlocks() - deadlocks_before, soak.api_errors)


def _programme(instance: Instance) -> tuple[str, str]:
    """A region of people enrolled in a plan whose cycles are billed: what the payrolls pay."""
    from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
    from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
    from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
    from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
    from benefitflow.workflows.direct import run_steps
    from benefitflow_dev.synthetic import write_registry_file

    write_registry_file(instance.inbox / "soak-people.csv", 60, seed=7, invalid_share=0, duplicate_share=0,
                        likely_duplicate_share=0, household_prefix="SOAK-")
    run_steps(INDIVIDUALS, file="soak-people.csv", options={"mode": "create", "on_invalid_rows": "skip_invalid_rows"},
              maker="maker", checker="checker", run_id=uuid.uuid4().hex)
    region = _a_region()
    plan = {"code": "SOAK", "name": "Soak", "type": "INDIVIDUAL", "valid_from": "2026-01-01", "currency": "KES",
            "entitlement": {"fixed_amount": "100.00"}}
    run_steps(DEFINE, options={"plan": plan}, maker="maker", checker="checker", run_id=uuid.uuid4().hex)
    run_steps(ENROLMENT, options={"plan": "SOAK", "target_status": "ACTIVE", "criteria": {"all": [
        {"field": "region", "op": "=", "value": region}]}}, maker="maker", checker="checker", run_id=uuid.uuid4().hex)
    for month in range(1, PAYROLL_CYCLES + 1):
        run_steps(CYCLE, options={"plan": "SOAK", "cycle": f"S{month}", "period_start": f"2026-{month:02d}-01",
                                  "period_end": f"2026-{month:02d}-28"},
                  maker="maker", checker="payment_checker", run_id=uuid.uuid4().hex)
    return region, "SOAK"


def _a_region() -> str:
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute("SELECT region FROM registry.individuals GROUP BY region ORDER BY count(*) DESC LIMIT 1")
        return str(cur.fetchone()[0])


def _maker(soak: Soak, number: int, ended: list[Ended]) -> None:
    from benefitflow_dev.airflow_client import AirflowClient

    maker = AirflowClient(soak.instance.airflow_url, "maker", soak.instance.user_password("maker"))
    turn = 0
    while time.monotonic() < soak.deadline:
        operation = OPERATIONS[(number + turn) % len(OPERATIONS)]
        dag_id, conf = _operation(soak, operation, f"m{number}-{turn}", turn)
        triggered_at = datetime.now(UTC)
        run_id, state = "(not triggered)", "error"
        try:
            response = maker.trigger(dag_id, conf)
            response.raise_for_status()
            run_id = response.json()["dag_run_id"]
            state = _run_ended(maker, dag_id, run_id, soak.api_errors)
        except Exception as exc:  # counted as a failure, and the maker goes on
            soak.api_errors[_error_name(exc)] += 1
            print(f"  maker {number}: {dag_id} {run_id}: {exc!r}")
        ended.append(Ended(operation, dag_id, run_id, triggered_at, datetime.now(UTC), state))
        turn += 1


def _run_ended(maker: AirflowClient, dag_id: str, run_id: str, api_errors: Counter) -> str:
    """The run's final state, asked for until it has one: a request the API server fails (it may, under this load)
    is counted and asked again, as a person would reload the page."""
    import requests

    deadline = time.monotonic() + DRAIN_MINUTES * 60
    while time.monotonic() < deadline:
        try:
            state = maker.run_state(dag_id, run_id)
        except requests.RequestException as exc:
            api_errors[_error_name(exc)] += 1
            time.sleep(1)
            continue
        if state in ("success", "failed"):
            return state
        time.sleep(0.5)
    return "timeout"


def _error_name(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return f"HTTP {response.status_code}" if response is not None else type(exc).__name__


def _operation(soak: Soak, operation: str, label: str, turn: int) -> tuple[str, dict]:
    from benefitflow_dev.synthetic import write_registry_file

    inbox = soak.instance.inbox
    if operation in ("individuals_import", "refused_import"):
        name = f"soak-{label}.csv"
        write_registry_file(inbox / name, PEOPLE_PER_FILE, seed=hash(label) & 0xFFFF,
                            invalid_share=0.25 if operation == "refused_import" else 0, duplicate_share=0,
                            likely_duplicate_share=0, household_prefix=f"{label.upper()}-")
        return "individuals_import", {"file": name, "mode": "create"}
    if operation == "platform_selftest":
        name = f"soak-{label}-selftest.csv"
        code = label.upper()
        (inbox / name).write_text(f"code,label,amount\n{code}-1,soak,1.00\n{code}-2,soak,2.50\n")
        return "platform_selftest", {"file": name}
    if operation == "registry_export":
        return "registry_export", {"filter": {"all": [{"field": "region", "op": "=", "value": soak.region}]},
                                   "columns": ["individual_id", "first_name"]}
    return "payroll", {"plan": soak.plan, "cycle": f"S{turn % PAYROLL_CYCLES + 1}"}


def _checkers(instance: Instance, done: threading.Event) -> None:
    """Each checker answers every request waiting for them as soon as its step is parked."""
    from benefitflow_dev.airflow_client import AirflowClient

    checkers = [AirflowClient(instance.airflow_url, name, instance.user_password(name))
                for name in ("checker", "payment_checker")]
    while not done.is_set():
        for checker in checkers:
            for request in _pending(checker):
                ti = request["task_instance"]
                # Only once parked: an answer between the request appearing and the step parking is recorded, but
                # Airflow 3.3.2 may then not resume the step (the approval watchdog delivers it, seconds later).
                if checker.task_states(ti["dag_id"], ti["dag_run_id"]).get(ti["task_id"]) == "awaiting_input":
                    checker.answer(ti["dag_id"], ti["dag_run_id"], "Approve", task_id=ti["task_id"])
        time.sleep(1)


def _pending(checker: AirflowClient) -> list[dict]:
    try:
        return checker.pending_approvals()
    except Exception as exc:  # a busy API server: asked again in a second
        print(f"  ({checker.username}: {exc})")
        return []


def _deadlocks() -> int:
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute("SELECT coalesce(sum(deadlocks), 0) FROM pg_stat_database")
        return int(cur.fetchone()[0])


def _report(instance: Instance, ended: list[Ended], deadlocks: int, api_errors: Counter) -> int:
    from benefitflow.core import config
    from benefitflow.payments.payroll import payroll_dir
    from benefitflow_dev import invariants
    from benefitflow_dev.airflow_client import AirflowClient

    admin = AirflowClient(instance.airflow_url, "admin", instance.user_password("admin"))
    committed: list[tuple[Ended, datetime]] = []
    retried = Counter()
    refused, failed = [], []
    for run in ended:
        if run.state == "error":
            failed.append(run)
            continue
        tries = {ti["task_id"]: ti for ti in admin.request(
            "GET", f"/dags/{run.dag_id}/dagRuns/{run.run_id}/taskInstances").json()["task_instances"]}
        retried.update(task_id for task_id, ti in tries.items() if (ti["try_number"] or 0) > 1)
        commit = tries.get("commit")
        if commit and commit["state"] == "success" and commit["end_date"]:
            committed.append((run, datetime.fromisoformat(commit["end_date"])))
        elif run.state == "success":
            pass  # done without a commit (an export without personal columns)
        elif _refusal(run):
            refused.append(run)
        else:
            failed.append(run)
    first = min((run.triggered_at for run in ended), default=datetime.now(UTC))
    minutes = Counter(int((run.ended_at - first).total_seconds() // 60) for run in ended)
    commits = Counter(int((at - first).total_seconds() // 60) for _, at in committed)
    print("  minute   runs ended   committed")
    for minute in range(max(minutes, default=-1) + 1):
        print(f"  {minute + 1:>6} {minutes[minute]:>12} {commits[minute]:>11}")
    latencies = sorted((at - run.triggered_at).total_seconds() for run, at in committed)
    if latencies:
        p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]  # nearest rank
        print(f"  trigger -> committed: p50 {statistics.median(latencies):.1f} s, p95 {p95:.1f} s "
              f"({len(latencies)} commits; includes the checker's answer, given as soon as the step parks)")
    by_operation = Counter((run.operation, run.state) for run in ended)
    print("  runs: " + ", ".join(f"{operation} {state} {count}" for (operation, state), count in
                                 sorted(by_operation.items())))
    print(f"  refused (bad input, or bills another payroll took): {len(refused)}; other failures: {len(failed)}"
          + "".join(f"\n    FAILED {run.dag_id} {run.run_id}" for run in failed))
    print(f"  steps retried: {sum(retried.values())} ({', '.join(f'{k} {v}' for k, v in retried.items()) or '-'})")
    print(f"  deadlocks: {deadlocks}")
    print(f"  requests the API server failed (makers asked again): "
          f"{', '.join(f'{name} {count}' for name, count in api_errors.items()) or 'none'}")
    broken = invariants.broken(config.database_url(), payroll_dir())
    with redirect_stdout(io.StringIO()):
        differences = invariants.rebuild_differences()
    broken += [f"state differs from a full rebuild: {name} {counts}" for name, counts in differences.items()]
    print("  invariants: " + ("hold (audit chain, nothing committed twice, no bill open in two payrolls, payroll"
                              " files as recorded, state = full rebuild)" if not broken else "BROKEN"))
    for line in broken:
        print(f"    {line}")
    return 1 if failed or broken or deadlocks else 0


def _refusal(run: Ended) -> bool:
    """A run that failed on its input (INVALID), or whose approved proposal the registry had moved away from."""
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute("SELECT status, message FROM intake.uploads WHERE dag_id = %(d)s AND run_id = %(r)s"
                    " UNION ALL SELECT status, message FROM intake.requests WHERE dag_id = %(d)s AND run_id = %(r)s",
                    {"d": run.dag_id, "r": run.run_id})
        found = cur.fetchall()
    return any(status == "INVALID" or ((message or "").startswith("approved but not applied")
                                       and "no room left to write" not in message)  # a full outbox is no refusal
               for status, message in found)


if __name__ == "__main__":
    raise SystemExit(main())
