"""A step's process killed or PostgreSQL crashing in the middle of a workflow, Airflow's scheduler and triggerer killed
while a run waits for its checker: the run completes after its retry, nothing is committed twice, and the audit chain
verifies (issue 24). Run by the `faults` tier (`make test-faults`), on services of its own; not by `make test`.

The faults are made in an upload workflow (individuals_import) and a request workflow (payroll). Each step is caught
in the middle without a pause point in the platform's code: the test holds a lock the step needs (the audit chain's
for intake, one on a table validate writes, the proposal's for propose and commit, a mart's for publish), finds the
step's connection waiting for it in PostgreSQL's `pg_stat_activity` and the task's process by the connection's port,
and makes the fault there; the lock is then let go."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest

from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll import payroll_dir
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps
from benefitflow_dev import invariants, postgres, services
from benefitflow_dev.instance import Instance
from tests.e2e.people import DAG, committed_once, people_file, query, register_region

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


@pytest.fixture(autouse=True)
def invariants_hold(database) -> Iterator[None]:
    """After each fault: the audit chain verifies, nothing committed twice, no bill open in two payrolls, every
    committed payroll's file as recorded; and the state the publishes kept is the one the ledger gives when rebuilt
    whole."""
    yield
    assert invariants.broken(os.environ["BENEFITFLOW_DATABASE_URL"], payroll_dir()) == []
    assert invariants.rebuild_differences() == {}


AUDIT_CHAIN = "SELECT pg_advisory_lock(hashtext('benefitflow.audit_chain'))"  # what each audit event's trigger takes


def connection_waiting(*, for_: str, on: str, timeout: float = 120) -> int:
    """The client port of a connection waiting (`for_`: an advisory lock or a relation's) in a statement naming `on`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = query("SELECT client_port FROM pg_stat_activity WHERE wait_event = %s AND client_port IS NOT NULL"
                      " AND datname = current_database() AND strpos(query, %s) > 0", for_, on)
        if found:
            return int(found[0][0])
        time.sleep(0.5)
    raise AssertionError(f"no step came to wait for the {for_} lock in a statement naming {on}")


def process_on_port(port: int) -> psutil.Process:
    """The local process holding the connection from `port`: the task's own process."""
    [pid] = {c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid}
    return psutil.Process(pid)


def kill(process: psutil.Process) -> None:
    """SIGKILL, as the out-of-memory killer sends it."""
    process.kill()
    process.wait(30)


@contextmanager
def holding(*statements: str, url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """A connection of the test's own (the platform's login, or `url`'s) that ran `statements` in one open transaction:
    the locks they take are held until the block ends (or a crash ends the connection first)."""
    with closing(psycopg2.connect(url or os.environ["BENEFITFLOW_DATABASE_URL"])) as holder, holder.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        yield cur


@dataclass(frozen=True)
class Case:
    """A workflow the faults are made in: how a run of it starts, what locks catch its steps, what it leaves once."""

    dag_id: str
    checker: str
    checked_by_validate: str  # a table validate writes (and intake does not): a SHARE lock on it holds validate
    published_late: str  # a mart its publish rebuilds after the state
    # What a run needs, made beforehand (no lock held); then the trigger: the run's id and its "done once" check.
    prepare: Callable[[Instance], Any]
    trigger: Callable[[Any, Any], tuple[str, Callable[[], None]]]
    named_by_intake: Callable[[Any], str]  # what intake's audit event names of a prepared run (its file, its plan)

    def start(self, airflow, database: Instance) -> tuple[str, Callable[[], None]]:
        return self.trigger(airflow, self.prepare(database))

    def input_of(self, run_id: str) -> dict[str, int]:
        """{"upload_id": …} or {"request_id": …}: the run's input, once intake committed it."""
        table, column = ("uploads", "upload_id") if self.dag_id == DAG else ("requests", "request_id")
        [(key,)] = query(f"SELECT {column} FROM intake.{table} WHERE run_id = %s AND status <> 'SUPERSEDED'", run_id)
        return {column: int(key)}

    def catch_after_approval(self, run_id: str, step: str) -> tuple[str, str, str]:
        """How `commit` (inside its transaction: the proposal's lock) or `publish` (half way: a mart's lock) is caught:
        the statement to hold, and what its connection then waits for, in a statement naming what."""
        if step == "commit":
            return advisory_lock(self.lock_key(run_id)), "advisory", quoted(self.lock_key(run_id))
        return f"LOCK TABLE marts.{self.published_late} IN ACCESS EXCLUSIVE MODE", "relation", self.published_late

    def lock_key(self, run_id: str) -> str:
        """The key of the advisory lock propose and commit take on the run's proposal."""
        workflow = INDIVIDUALS if self.dag_id == DAG else PAYROLL
        return workflow.proposal_for(self.input_of(run_id)).lock_key


def individuals(airflow, file: tuple[str, str]) -> tuple[str, Callable[[], None]]:
    name, region = file
    response = airflow("maker").trigger(DAG, {"file": name, "mode": "create"})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    return run_id, lambda: committed_once(run_id, region)


def payroll(airflow, code: str) -> tuple[str, Callable[[], None]]:
    run_id = asked_for_payroll(airflow, code)
    return run_id, lambda: paid_once(run_id, code)


def asked_for_payroll(airflow, code: str) -> str:
    """A payroll of the plan's cycle S1, triggered by the maker: its run id."""
    response = airflow("maker").trigger("payroll", {"cycle": "S1", "plan": code})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def paid_once(run_id: str, code: str) -> None:
    """One payroll of the plan, the run's, paying each of its bills once (its file: the invariants)."""
    assert query("SELECT r.run_id, count(*), count(DISTINCT pb.bill_id) FROM ledger.payrolls p JOIN intake.requests r"
                 " USING (request_id) JOIN ledger.payroll_bills pb USING (payroll_id) WHERE p.plan_code = %s"
                 " GROUP BY r.run_id", code) == [(run_id, 6, 6)]


UPLOAD = Case(DAG, "checker", "row_errors", "mart_registry_individuals", people_file, individuals,
              lambda file: file[0])
REQUEST = Case("payroll", "payment_checker", "request_selection", "mart_payments",
               lambda database: billed_plan(register_region(database)), payroll, lambda code: code)
CASES = [pytest.param(UPLOAD, id="individuals_import"), pytest.param(REQUEST, id="payroll")]


def parked(airflow, case: Case, run_id: str) -> None:
    airflow("maker").wait_until_parked(case.dag_id, run_id)


def approve(airflow, case: Case, run_id: str) -> None:
    assert airflow(case.checker).answer(case.dag_id, run_id, "Approve").status_code == 200


def finished(airflow, database, case: Case, run_id: str, *, retried: str | None) -> None:
    """The run succeeded; the step `retried` did so at its second try (every other step at its first)."""
    try:
        assert airflow("checker").wait_for_run(case.dag_id, run_id, timeout=300) == "success"
    except TimeoutError as exc:
        alive = {name: services.pid_of(database, name) for name in ("airflow-scheduler", "airflow-api-server")}
        scheduler_log = (database.log_dir / "airflow-scheduler.log").read_text()[-6000:]
        raise AssertionError(f"{exc}; services running: {alive}; the scheduler's log ends: {scheduler_log}") from exc
    tries = {ti["task_id"]: ti["try_number"] for ti in airflow("admin").request(
        "GET", f"/dags/{case.dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]}
    steps = ("intake", "validate", "propose", "commit", "publish")
    assert {step: tries[step] for step in steps} == {step: 2 if step == retried else 1 for step in steps}, tries


def share_lock(table: str) -> str:
    """Held, no row of `table` can be written (and it can still be read)."""
    return f"LOCK TABLE intake.{table} IN SHARE MODE"


def advisory_lock(key: str) -> str:
    return f"SELECT pg_advisory_lock(hashtextextended({quoted(key)}, 0))"


def quoted(key: str) -> str:
    """An advisory lock's key as a statement taking it names it: whole (`…:12` is not `…:123`)."""
    return f"'{key}'"


def killed_in(airflow, database: Instance, case: Case, step: str) -> tuple[str, Callable[[], None]]:
    """A run of `case` whose `step` was killed in the middle (and is retried), approved: run id, "done once" check.

    intake: inside its transaction, as it records the upload or request (the audit chain's lock); validate: inside
    its transaction, as it writes its errors or selection; propose: before it builds (the proposal's lock); commit:
    inside its transaction (the proposal's lock); publish: half way through its models (a mart's lock)."""
    prepared = case.prepare(database)
    if step == "intake":
        with holding(AUDIT_CHAIN):
            run_id, done_once = case.trigger(airflow, prepared)
            kill(process_on_port(connection_waiting(for_="advisory", on=case.named_by_intake(prepared))))
    elif step in ("validate", "propose"):
        with holding(share_lock(case.checked_by_validate)) as validate_held:
            run_id, done_once = case.trigger(airflow, prepared)
            waiting = connection_waiting(for_="relation", on=case.checked_by_validate)
            if step == "validate":
                kill(process_on_port(waiting))
            else:
                with holding(advisory_lock(case.lock_key(run_id))):
                    validate_held.connection.rollback()  # validate goes on, to its end
                    kill(process_on_port(connection_waiting(for_="advisory", on=quoted(case.lock_key(run_id)))))
    else:
        run_id, done_once = case.trigger(airflow, prepared)
        parked(airflow, case, run_id)
        held, waits_for, on = case.catch_after_approval(run_id, step)
        with holding(held):
            approve(airflow, case, run_id)
            kill(process_on_port(connection_waiting(for_=waits_for, on=on)))
        return run_id, done_once
    parked(airflow, case, run_id)
    approve(airflow, case, run_id)
    return run_id, done_once


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("step", ["intake", "validate", "propose", "commit", "publish"])
def test_a_step_killed_in_the_middle_is_retried_and_its_run_commits_once(airflow, database, case: Case,
                                                                        step: str) -> None:
    """SIGKILL, as the out-of-memory killer sends it, to the task's process in the middle of each step."""
    run_id, done_once = killed_in(airflow, database, case, step)
    finished(airflow, database, case, run_id, retried=step)
    done_once()


@pytest.mark.parametrize("step", ["commit", "publish"])
def test_a_step_interrupted_by_a_database_crash_is_retried_and_its_run_commits_once(airflow, database,
                                                                                   step: str) -> None:
    """PostgreSQL stopped as by a crash (`immediate`: no checkpoint, UNLOGGED tables emptied) and started again while
    a commit's transaction is open, or half way through a publish; Airflow's services, whose metadata database it
    also is, carry on (the scheduler, which exits when its database goes, is started again by its supervisor)."""
    run_id, done_once = UPLOAD.start(airflow, database)
    parked(airflow, UPLOAD, run_id)
    held, waits_for, on = UPLOAD.catch_after_approval(run_id, step)
    with holding(held):
        approve(airflow, UPLOAD, run_id)
        connection_waiting(for_=waits_for, on=on)
        postgres.stop(database, mode="immediate")
        postgres.start(database)
    finished(airflow, database, UPLOAD, run_id, retried=step)
    done_once()


def test_a_payroll_commit_killed_with_its_file_written_is_retried_and_pays_once(airflow, database) -> None:
    """Killed inside its transaction once the payroll's file is written (as it records the file's sha256): the
    transaction is undone and the retry writes the file again."""
    run_id, done_once = REQUEST.start(airflow, database)
    parked(airflow, REQUEST, run_id)
    # The owner's: the platform's login may only append to the ledger (a SHARE lock needs more).
    with holding("LOCK TABLE ledger.payroll_exports IN SHARE MODE", url=database.owner_database_url):
        approve(airflow, REQUEST, run_id)
        kill(process_on_port(connection_waiting(for_="relation", on="ledger.payroll_exports")))
    finished(airflow, database, REQUEST, run_id, retried="commit")
    done_once()


def test_a_payroll_committed_whose_process_is_killed_before_its_file_is_named_gets_its_file_once(
        airflow, database) -> None:
    """Killed once the commit went through and before the file got its final name (review finding M4): the retry
    finds the commit, and puts the file in place."""
    run_id, done_once = REQUEST.start(airflow, database)
    parked(airflow, REQUEST, run_id)
    key = f"benefitflow.payroll_file:{REQUEST.input_of(run_id)['request_id']}"
    with holding(advisory_lock(key)):
        approve(airflow, REQUEST, run_id)
        kill(process_on_port(connection_waiting(for_="advisory", on=quoted(key))))
        done_once()  # committed, its file not yet named
    finished(airflow, database, REQUEST, run_id, retried="commit")


def test_runs_waiting_for_their_checker_outlive_the_scheduler_and_the_triggerer(airflow, database) -> None:
    """Both killed while the run waits for its checker, who answers before either is back: their supervisors start
    them again, the triggerer takes the waiting request up again, and the answer is acted on."""
    run_id, done_once = UPLOAD.start(airflow, database)
    parked(airflow, UPLOAD, run_id)
    # The approval watchdog would deliver the answer too (README, "After a failure"): paused, it leaves that to the
    # triggerer started again.
    [watchdog] = psutil.Process(services.pid_of(database, "approval-watchdog")).children()
    watchdog.suspend()
    try:
        killed_and_answered(airflow, database, run_id)
    finally:
        watchdog.resume()
    done_once()


def killed_and_answered(airflow, database: Instance, run_id: str) -> None:
    killed = {}
    for name in ("airflow-scheduler", "airflow-triggerer"):
        supervisor = psutil.Process(services.pid_of(database, name))
        [service] = supervisor.children()
        kill(service)
        killed[name] = (supervisor, service.pid)
    approve(airflow, UPLOAD, run_id)
    deadline = time.monotonic() + 60
    while any(not [c for c in supervisor.children() if c.pid != pid] for supervisor, pid in killed.values()):
        assert time.monotonic() < deadline, "a supervisor did not start its service again"
        time.sleep(1)
    finished(airflow, database, UPLOAD, run_id, retried=None)


@pytest.fixture
def full_payroll_folder() -> Iterator[Path]:
    """The outbox's payroll folder on a small file system of its own (a tmpfs with its owner and mode), filled up by a
    file of the test's: not a byte more fits. Unmounted at the end (the folder's own files were hidden, not touched)."""
    folder = payroll_dir()
    found = folder.stat()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=256k,mode={found.st_mode & 0o7777:o},uid={found.st_uid},"
                    f"gid={found.st_gid}", "tmpfs", str(folder)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={folder / 'filler'}", "bs=4k"], capture_output=True)
        yield folder
    finally:
        written = [(path.name, path.read_bytes(), path.stat()) for path in folder.iterdir() if path.name != "filler"]
        subprocess.run(["umount", str(folder)], check=True)
        for name, content, found in written:  # into the outbox the file system stood for
            (folder / name).write_bytes(content)
            os.chown(folder / name, found.st_uid, found.st_gid)
            os.chmod(folder / name, found.st_mode & 0o7777)


def billed_plan(region: str) -> str:
    """A plan of `region`'s people, all enrolled, with cycle S1 billed (directly: the payments are not what this is
    about)."""
    code = f"FLT-{uuid.uuid4().hex[:6].upper()}"
    plan = {"code": code, "name": "Faults", "type": "INDIVIDUAL", "valid_from": "2026-01-01", "currency": "KES",
            "entitlement": {"fixed_amount": "100.00"}}
    for workflow, options, checker in (
            (DEFINE, {"plan": plan}, "checker"),
            (ENROLMENT, {"plan": code, "target_status": "ACTIVE", "criteria": {"all": [
                {"field": "region", "op": "=", "value": region}]}}, "checker"),
            (CYCLE, {"plan": code, "cycle": "S1", "period_start": "2026-09-01", "period_end": "2026-09-30"},
             "payment_checker")):
        run_steps(workflow, options=options, maker="maker", checker=checker, run_id=uuid.uuid4().hex)
    return code


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_payroll_whose_file_finds_the_outbox_full_is_not_committed_and_is_once_there_is_room(
        airflow, database, full_payroll_folder: Path) -> None:
    """The file is written inside the commit's transaction: no room for it, nothing committed, no part of it left,
    and the request says why; with room again, the same payroll asked for again is committed with its file."""
    code = billed_plan(register_region(database))
    run_id = asked_for_payroll(airflow, code)
    parked(airflow, REQUEST, run_id)
    approve(airflow, REQUEST, run_id)
    assert airflow("maker").wait_for_run("payroll", run_id, timeout=300) == "failed"
    [(status, message)] = query("SELECT status, message FROM intake.requests WHERE dag_id = 'payroll' AND run_id = %s",
                                run_id)
    assert status == "FAILED" and "no room left to write" in message and "file system is full" in message, message
    assert query("SELECT count(*) FROM ledger.payrolls WHERE plan_code = %s", code) == [(0,)]
    assert sorted(path.name for path in full_payroll_folder.iterdir()) == ["filler"]

    (full_payroll_folder / "filler").unlink()
    run_id = asked_for_payroll(airflow, code)
    parked(airflow, REQUEST, run_id)
    approve(airflow, REQUEST, run_id)
    finished(airflow, database, REQUEST, run_id, retried=None)
    paid_once(run_id, code)  # and its file as recorded: the invariants, once the file system is gone
