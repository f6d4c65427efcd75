"""An approval commits exactly what the checker saw: the bait and switch tried through the REST API."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from benefitflow.core import db

pytestmark = pytest.mark.e2e

DAG_ID = "platform_selftest"
TWO_CHECKERS_DAG = "platform_selftest_two_checkers"


def query(statement: str, *args: object) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute(statement, args)
        return cur.fetchall()


def bait_csv(rows: int, amount: str, tag: str) -> str:
    return "code,label,amount\n" + "".join(f"BAIT-{tag}-{i},small,{amount}\n" for i in range(1, rows + 1))


def clear(client, dag_id: str, run_id: str, task_ids: list[str], *, downstream: bool = False):
    """What the UI's Clear does, with "Downstream" ticked or not."""
    body = {"dry_run": False, "dag_run_id": run_id, "task_ids": task_ids, "include_downstream": downstream,
            "include_upstream": False, "only_failed": False, "reset_dag_runs": True}
    return client.request("POST", f"/dags/{dag_id}/clearTaskInstances", json=body)


def committed(dag_id: str, run_id: str) -> tuple[int, Decimal]:
    [(rows, total)] = query("SELECT count(*), coalesce(sum(r.amount), 0) FROM ledger.selftest_records r"
                            " JOIN ledger.commits c USING (commit_id) WHERE c.dag_id = %s AND c.run_id = %s",
                            dag_id, run_id)
    return rows, total


def uploads_of(dag_id: str, run_id: str) -> list[tuple]:
    return query("SELECT upload_id, status FROM intake.uploads WHERE dag_id = %s AND run_id = %s ORDER BY upload_id",
                 dag_id, run_id)


def wait_for_new_proposal(client, dag_id: str, run_id: str, timeout: float = 600) -> None:
    """Until the cleared intake → validate → propose have run again (propose succeeded in a later try)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/propose")
        response.raise_for_status()
        propose = response.json()
        if propose["state"] == "success" and propose["try_number"] > 1:
            return
        if propose["state"] in {"failed", "upstream_failed"}:
            raise AssertionError(f"propose {propose['state']} after the clear: {client.task_states(dag_id, run_id)}")
        time.sleep(1)
    raise TimeoutError(f"propose did not run again: {client.task_states(dag_id, run_id)}")


def start_bait(airflow, inbox_file) -> tuple[str, object]:
    """The maker's harmless file, waiting for the checker: 1 row, 1.00."""
    tag = uuid.uuid4().hex[:6].upper()
    path = inbox_file("bait.csv", bait_csv(1, "1.00", tag))
    response = airflow("maker").trigger(DAG_ID, {"file": path.name})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    airflow("checker").wait_until_parked(DAG_ID, run_id)
    [request] = [p for p in airflow("checker").pending_approvals() if p["task_instance"]["dag_run_id"] == run_id]
    assert "**rows to append:** 1" in request["body"] and "**total amount:** 1.00" in request["body"]
    assert "**Proposal:** `" in request["body"]
    return run_id, path, tag


def test_the_maker_cannot_clear_the_upstream_steps_so_the_approval_commits_the_bait(airflow, inbox_file) -> None:
    run_id, path, tag = start_bait(airflow, inbox_file)
    path.write_text(bait_csv(50, "999999.00", tag))
    response = clear(airflow("maker"), DAG_ID, run_id, ["intake", "validate", "propose"])
    assert response.status_code == 403, response.text
    assert airflow("checker").answer(DAG_ID, run_id, "Approve").status_code == 200
    # The commit is what counts here; the run's publish goes on without the test waiting for it.
    airflow("checker").wait_for_task_state(DAG_ID, run_id, "commit", {"success"}, timeout=900)
    assert committed(DAG_ID, run_id) == (1, Decimal("1.00"))  # what the checker saw, and only that


def test_a_data_engineers_clear_cannot_make_the_old_approval_commit_the_new_proposal(airflow, inbox_file) -> None:
    engineer, checker = airflow("engineer"), airflow("checker")
    run_id, path, tag = start_bait(airflow, inbox_file)
    [(bait_upload, _)] = uploads_of(DAG_ID, run_id)
    path.write_text(bait_csv(50, "999999.00", tag))
    response = clear(engineer, DAG_ID, run_id, ["intake", "validate", "propose"])
    assert response.status_code == 200, response.text

    wait_for_new_proposal(engineer, DAG_ID, run_id)
    assert engineer.task_states(DAG_ID, run_id)["approve"] == "awaiting_input"  # still showing 1 row, 1.00
    # The checkers' dashboard no longer counts the old request as waiting for them.
    assert query("SELECT status FROM marts.mart_approval_requests WHERE dag_id = %s AND run_id = %s",
                 DAG_ID, run_id) == [("SUPERSEDED",)]

    # The checker approves what the request shows; the proposal is no longer that: nothing is approved.
    assert checker.answer(DAG_ID, run_id, "Approve").status_code == 200
    assert engineer.wait_for_run(DAG_ID, run_id, timeout=900) == "failed"
    assert engineer.task_states(DAG_ID, run_id)["approve"] == "failed"
    [(outcome, checker_name, upload_id, reason)] = query(
        "SELECT outcome, checker, upload_id, reason FROM ledger.decisions WHERE dag_id = %s AND run_id = %s",
        DAG_ID, run_id)
    assert (outcome, checker_name, upload_id) == ("REFUSED", "checker", bait_upload)
    assert "the proposal changed after the request was made" in reason
    assert query("SELECT status FROM marts.mart_approval_requests WHERE dag_id = %s AND run_id = %s",
                 DAG_ID, run_id) == [("REFUSED",)]
    assert [status for _, status in uploads_of(DAG_ID, run_id)] == ["SUPERSEDED", "WAITING_FOR_APPROVAL"]
    assert committed(DAG_ID, run_id) == (0, Decimal("0"))

    # Airflow keeps a step's first request: cleared, the step refuses to ask again under the old numbers.
    response = clear(engineer, DAG_ID, run_id, ["approve"], downstream=True)
    assert response.status_code == 200, response.text
    assert engineer.wait_for_run(DAG_ID, run_id, timeout=900) == "failed"
    assert committed(DAG_ID, run_id) == (0, Decimal("0"))
    outcomes = query("SELECT outcome, reason FROM ledger.decisions WHERE dag_id = %s AND run_id = %s"
                     " ORDER BY decision_id", DAG_ID, run_id)
    assert [outcome for outcome, _ in outcomes] == ["REFUSED", "REFUSED"] and "trigger a new run" in outcomes[1][1]


def test_a_cleared_two_checker_run_asks_both_checkers_again(airflow, inbox_file) -> None:
    maker, checker, checker2, engineer = airflow("maker"), airflow("checker"), airflow("checker2"), airflow("engineer")
    name = inbox_file("two.csv", f"code,label,amount\nTWO-{uuid.uuid4().hex[:6].upper()},x,5.00\n").name
    run_id = maker.trigger(TWO_CHECKERS_DAG, {"file": name}).json()["dag_run_id"]
    checker.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve_1")
    assert checker.answer(TWO_CHECKERS_DAG, run_id, "Approve", "approve_1").status_code == 200
    checker2.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve")

    # Cleared after the first approval: that approval no longer counts, both checkers are asked again.
    response = clear(engineer, TWO_CHECKERS_DAG, run_id, ["approve_1"], downstream=True)
    assert response.status_code == 200, response.text
    checker.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve_1")
    [again] = [p for p in checker.pending_approvals()
               if p["task_instance"]["dag_run_id"] == run_id and p["task_instance"]["task_id"] == "approve_1"]
    assert again["task_instance"]["state"] == "awaiting_input"
    assert sorted(user["name"] for user in again["assigned_users"]) == ["checker", "checker2"]
    assert checker.answer(TWO_CHECKERS_DAG, run_id, "Approve", "approve_1").status_code == 200
    checker2.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve")
    assert checker2.answer(TWO_CHECKERS_DAG, run_id, "Reject").status_code == 200
    assert checker2.wait_for_run(TWO_CHECKERS_DAG, run_id, timeout=900) == "success"
    assert committed(TWO_CHECKERS_DAG, run_id) == (0, Decimal("0"))
    given = query("SELECT actor, (details ->> 'clear_number')::int FROM ledger.audit_events"
                  " WHERE action = 'selftest_two_checkers.approval_given' AND object_id = %s ORDER BY event_id",
                  f"{TWO_CHECKERS_DAG}/{run_id}")
    assert [actor for actor, _ in given] == ["checker", "checker"] and given[0][1] < given[1][1]
    assert query("SELECT outcome, checker, other_approvers FROM ledger.decisions WHERE dag_id = %s AND run_id = %s",
                 TWO_CHECKERS_DAG, run_id) == [("REJECTED", "checker2", ["checker"])]
