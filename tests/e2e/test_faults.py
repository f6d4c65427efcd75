"""A process killed or PostgreSQL crashing in the middle of a workflow: the run completes after its retry, nothing is
committed twice, and the audit chain verifies (issue 24). Run by the `faults` tier (`make test-faults`), on services
of its own; not by `make test`.

The commit step is caught where it matters most, inside its transaction: the test holds the proposal's lock, so the
commit waits there (its connection is in PostgreSQL's `pg_stat_activity`, waiting on an advisory lock) until the
fault is made; the lock is then let go."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import psycopg2
import pytest

from benefitflow.platform.cli import verify_audit
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow_dev import postgres, services
from tests.e2e.people import DAG, committed_once, proposed, query

pytestmark = [pytest.mark.e2e, pytest.mark.faults]


def commit_waiting_at_its_lock(lock_key: str, timeout: float = 120) -> int:
    """The client port of the commit's connection once it waits for the proposal's lock (`lock_key`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = query("SELECT client_port FROM pg_stat_activity WHERE wait_event = 'advisory'"
                      " AND datname = current_database() AND client_port IS NOT NULL"
                      " AND strpos(query, 'pg_advisory_xact_lock') > 0 AND strpos(query, %s) > 0", lock_key)
        if found:
            return int(found[0][0])
        time.sleep(0.5)
    raise AssertionError("the commit never reached the proposal's lock")


def process_on_port(port: int) -> psutil.Process:
    """The local process holding the connection from `port`: the task's own process."""
    [pid] = {c.pid for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.pid}
    return psutil.Process(pid)


@contextmanager
def commit_caught_waiting(airflow, database) -> Iterator[tuple[str, str, str]]:
    """An individuals import approved, its commit waiting at the proposal's lock: run id, region, the lock's key. The
    lock is held on a connection of the test's own, closed at the end (also when a crash has already ended it)."""
    run_id, region = proposed(airflow, database)
    (upload_id,) = query("SELECT upload_id FROM intake.uploads WHERE run_id = %s", run_id)[0]
    lock_key = INDIVIDUALS.proposal_for({"upload_id": upload_id}).lock_key
    holder = psycopg2.connect(os.environ["BENEFITFLOW_DATABASE_URL"])
    holder.autocommit = True
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
        assert airflow("checker").answer(DAG, run_id, "Approve").status_code == 200
        yield run_id, region, lock_key
        assert query("SELECT count(*) FROM ledger.commits WHERE upload_id = %s", upload_id) == [(0,)]
    finally:
        holder.close()


def finished_after_a_retry(airflow, database, run_id: str) -> None:
    try:
        assert airflow("checker").wait_for_run(DAG, run_id, timeout=300) == "success"
    except TimeoutError as exc:
        alive = {name: services.pid_of(database, name) for name in ("airflow-scheduler", "airflow-api-server")}
        scheduler_log = (database.log_dir / "airflow-scheduler.log").read_text()[-6000:]
        raise AssertionError(f"{exc}; services running: {alive}; the scheduler's log ends: {scheduler_log}") from exc
    commit = airflow("admin").request("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances/commit").json()
    assert commit["try_number"] == 2, commit


def test_a_commit_whose_process_is_killed_inside_its_transaction_is_retried_and_commits_once(
        airflow, database) -> None:
    """SIGKILL, as the out-of-memory killer sends it, to the task's process while its commit transaction is open."""
    with commit_caught_waiting(airflow, database) as (run_id, region, lock_key):
        task = process_on_port(commit_waiting_at_its_lock(lock_key))
        task.kill()
        task.wait(30)
    finished_after_a_retry(airflow, database, run_id)
    committed_once(run_id, region)


def test_a_commit_interrupted_by_a_database_crash_is_retried_and_commits_once(airflow, database) -> None:
    """PostgreSQL stopped as by a crash (`immediate`: no checkpoint, UNLOGGED tables emptied) and started again while
    the commit's transaction is open; Airflow's services, whose metadata database it also is, carry on."""
    with commit_caught_waiting(airflow, database) as (run_id, region, lock_key):
        commit_waiting_at_its_lock(lock_key)
        postgres.stop(database, mode="immediate")
        postgres.start(database)
    finished_after_a_retry(airflow, database, run_id)
    committed_once(run_id, region)
    assert verify_audit(os.environ["BENEFITFLOW_DATABASE_URL"]) == 0
