"""Who may do what through Airflow's public REST API (review C2), against one real parked run.

Makers trigger and read; checkers read and answer; neither clears, marks, deletes or pauses
anything, nor writes asset events, variables, connections or pools. A DataEngineer also clears
and marks runs, but neither answers approvals nor pauses or deletes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import closing
from functools import cache
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from benefitflow_dev.airflow_client import AirflowClient

pytestmark = pytest.mark.e2e

DAG_ID = "platform_selftest"
# maker2 is the other maker; `checker` is RegistryCheckers, ProgrammeCheckers and GrievanceCheckers,
# `payment_checker` PaymentCheckers: every checker group is covered.
MAKERS = ("maker", "maker2")
CHECKERS = ("checker", "checker2", "payment_checker")
NAME = f"bf_permissions_{uuid.uuid4().hex[:6]}"


def forbidden_calls(run_id: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    """name -> (method, path, JSON body): real, valid requests; refused by authorisation before they act."""
    run = f"/dags/{DAG_ID}/dagRuns/{run_id}"
    return {
        "clear task instances": ("POST", f"/dags/{DAG_ID}/clearTaskInstances",
                                 {"dry_run": False, "dag_run_id": run_id, "task_ids": ["intake"],
                                  "only_failed": False}),
        "clear the run": ("POST", f"{run}/clear", {"dry_run": False}),
        "mark a task instance": ("PATCH", f"{run}/taskInstances/approve", {"new_state": "success"}),
        "mark the run": ("PATCH", run, {"state": "failed"}),
        "delete the run": ("DELETE", run, None),
        "delete the DAG": ("DELETE", f"/dags/{DAG_ID}", None),
        "pause the DAG": ("PATCH", f"/dags/{DAG_ID}", {"is_paused": True}),
        "pause DAGs in bulk": ("PATCH", f"/dags?dag_id_pattern={DAG_ID}", {"is_paused": True}),
        "create an asset event": ("POST", "/assets/events", {"asset_id": 1, "extra": {}}),
        "create a variable": ("POST", "/variables", {"key": NAME, "value": "x"}),
        "create a connection": ("POST", "/connections", {"connection_id": NAME, "conn_type": "http"}),
        "create a pool": ("POST", "/pools", {"name": NAME, "slots": 1}),
    }


CALLS = tuple(forbidden_calls("x"))
ENGINEER_MAY = {"clear task instances", "clear the run", "mark a task instance", "mark the run"}


@pytest.fixture(scope="module")
def login(airflow) -> Callable[[str], AirflowClient]:
    """One client (one token) per user for the module."""
    return cache(airflow)


@pytest.fixture(scope="module")
def parked_run(login, database) -> str:
    """One platform_selftest run triggered by `maker`, waiting at its approval step."""
    name = f"{uuid.uuid4().hex[:10]}-permissions.csv"
    (database.inbox / name).write_text(f"code,label,amount\nP{uuid.uuid4().hex[:8].upper()}-1,x,1.00\n")
    response = login("maker").trigger(DAG_ID, {"file": name})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    login("maker").wait_until_parked(DAG_ID, run_id)
    return run_id


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("user", MAKERS + CHECKERS)
def test_makers_and_checkers_are_refused(login, parked_run: str, user: str, call: str) -> None:
    method, path, body = forbidden_calls(parked_run)[call]
    response = login(user).request(method, path, json=body)
    assert response.status_code == 403, f"{user} {call}: {response.status_code} {response.text}"


@pytest.mark.parametrize("call", sorted(set(CALLS) - ENGINEER_MAY))
def test_the_engineer_is_refused_what_is_not_run_operations(login, parked_run: str, call: str) -> None:
    method, path, body = forbidden_calls(parked_run)[call]
    response = login("engineer").request(method, path, json=body)
    assert response.status_code == 403, f"engineer {call}: {response.status_code} {response.text}"


@pytest.mark.parametrize("user", CHECKERS)
def test_checkers_cannot_trigger(login, user: str) -> None:
    assert login(user).trigger(DAG_ID, {"file": "anything.csv"}).status_code == 403


def test_the_run_is_untouched_and_the_maker_reads_it(login, parked_run: str) -> None:
    maker = login("maker")
    run = maker.request("GET", f"/dags/{DAG_ID}/dagRuns/{parked_run}")
    assert run.status_code == 200 and run.json()["state"] == "running"
    assert maker.task_states(DAG_ID, parked_run)["approve"] == "awaiting_input"
    dag = maker.request("GET", f"/dags/{DAG_ID}")
    assert dag.status_code == 200 and dag.json()["is_paused"] is False
    logs = maker.request("GET", f"/dags/{DAG_ID}/dagRuns/{parked_run}/taskInstances/intake/logs/1")
    assert logs.status_code == 200, logs.text
    xcom = maker.request("GET", f"/dags/{DAG_ID}/dagRuns/{parked_run}/taskInstances/propose/xcomEntries/return_value")
    assert xcom.status_code == 200, xcom.text
    assert "upload_id" in str(xcom.json()["value"])


def test_a_checker_reads_the_request_and_neither_maker_nor_engineer_answers(login, parked_run: str) -> None:
    detail = login("checker").request("GET", login("checker").hitl_path(DAG_ID, parked_run))
    assert detail.status_code == 200, detail.text
    assert detail.json()["response_received"] is False
    for user in ("maker", "engineer"):
        assert login(user).answer(DAG_ID, parked_run, "Approve").status_code == 403, user


def test_then_the_checker_rejects_and_the_engineer_clears_a_task(login, parked_run: str) -> None:
    """Last: the run ends (rejected), then a real clear by the engineer puts it back to work."""
    checker, engineer = login("checker"), login("engineer")
    assert checker.answer(DAG_ID, parked_run, "Reject").status_code == 200
    assert checker.wait_for_run(DAG_ID, parked_run) == "success"
    run_path = f"/dags/{DAG_ID}/dagRuns/{parked_run}"
    before = engineer.request("GET", run_path).json()
    assert engineer.task_states(DAG_ID, parked_run)["published"] == "skipped"

    time.sleep(1)  # queued_at has a resolution finer than this; makes "after" unambiguous
    cleared = engineer.request("POST", f"/dags/{DAG_ID}/clearTaskInstances", json={
        "dry_run": False, "dag_run_id": parked_run, "task_ids": ["published"], "only_failed": False})
    assert cleared.status_code == 200, cleared.text
    assert [ti["task_id"] for ti in cleared.json()["task_instances"]] == ["published"]
    after = engineer.request("GET", run_path).json()
    # The clear re-queued the run (the scheduler may already have finished it again: no-op task).
    assert after["queued_at"] > before["queued_at"]
    assert engineer.wait_for_run(DAG_ID, parked_run) == "success"


def test_the_directory_reader_reads_who_users_are_and_not_their_passwords(airflow_services) -> None:
    """Tasks read users and roles through airflow_reader: ids, names and whether active, never a password hash."""
    url = airflow_services.database_url("airflow_reader", "airflow")
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ab_user WHERE active AND username = 'checker'")
        assert cur.fetchone()[0] == 1
        for column in ("password", "email", "*"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(f"SELECT {column} FROM ab_user")
            conn.rollback()
