"""The six steps through the running Airflow services, as a maker and a checker would use them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from benefitflow.core import audit, db

pytestmark = pytest.mark.e2e

DAG_ID = "platform_selftest"
PARKED = {"awaiting_input"}


def selftest_file(inbox_file, rows: int = 3) -> str:
    unique = uuid.uuid4().hex[:8].upper()
    lines = ["code,label,amount"] + [f"{unique}-{i},row {i},{i}.25" for i in range(1, rows + 1)]
    return inbox_file("selftest.csv", "\n".join(lines) + "\n").name


def decisions_for(run_id: str) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute("SELECT outcome, maker, checker, checker_group FROM ledger.decisions"
                    " WHERE dag_id = %s AND run_id = %s ORDER BY decision_id", (DAG_ID, run_id))
        return cur.fetchall()


def committed_rows(run_id: str) -> int:
    return committed_rows_of(DAG_ID, run_id)


def committed_rows_of(dag_id: str, run_id: str) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM ledger.selftest_records r JOIN ledger.commits c USING (commit_id)"
                    " WHERE c.dag_id = %s AND c.run_id = %s", (dag_id, run_id))
        return cur.fetchone()[0]


def audit_actions(run_id: str) -> list[tuple]:
    with db.transaction() as cur:
        cur.execute("SELECT actor, action, outcome FROM ledger.audit_events WHERE object_id = %s ORDER BY event_id",
                    (f"{DAG_ID}/{run_id}",))
        return cur.fetchall()


def start_run(airflow, inbox_file, rows: int = 3) -> str:
    response = airflow("maker").trigger(DAG_ID, {"file": selftest_file(inbox_file, rows)})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def test_checker_cannot_trigger_and_maker_cannot_answer(airflow) -> None:
    response = airflow("checker").trigger(DAG_ID, {"file": "anything.csv"})
    assert response.status_code == 403


def test_maker_refused_then_checker_approves(airflow, inbox_file) -> None:
    maker, checker = airflow("maker"), airflow("checker")
    run_id = start_run(airflow, inbox_file, rows=3)
    maker.wait_for_task_state(DAG_ID, run_id, "approve", PARKED)

    pending = [p for p in checker.pending_approvals() if p["task_instance"]["dag_run_id"] == run_id]
    assert len(pending) == 1
    assert sorted(u["name"] for u in pending[0]["assigned_users"]) == ["checker", "checker2"]  # not the maker
    assert "rows to append:** 3" in pending[0]["body"]

    refused = maker.answer(DAG_ID, run_id, "Approve")
    assert refused.status_code == 403
    assert committed_rows(run_id) == 0 and decisions_for(run_id) == []

    approved = checker.answer(DAG_ID, run_id, "Approve")
    assert approved.status_code == 200, approved.text
    assert checker.wait_for_run(DAG_ID, run_id) == "success"

    assert decisions_for(run_id) == [("APPROVED", "maker", "checker", "RegistryCheckers")]
    assert committed_rows(run_id) == 3
    assert audit_actions(run_id)[:1] == [("maker", "selftest.approval_requested", "WAITING")]
    assert ("checker", "selftest.decision", "APPROVED") in audit_actions(run_id)
    with db.transaction() as cur:
        cur.execute("SELECT hours_to_decision FROM marts.mart_approvals WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] is not None
    with db.transaction() as cur:
        assert audit.first_break(cur) is None
        cur.execute("SELECT s.row_count, s.maker, s.checker FROM marts.mart_selftest_summary s"
                    " JOIN ledger.commits c USING (upload_id) WHERE c.run_id = %s", (run_id,))
        assert cur.fetchone() == (3, "maker", "checker")


def test_checker_rejects_and_nothing_is_committed(airflow, inbox_file) -> None:
    checker = airflow("checker")
    run_id = start_run(airflow, inbox_file)
    checker.wait_for_task_state(DAG_ID, run_id, "approve", PARKED)
    assert checker.answer(DAG_ID, run_id, "Reject").status_code == 200
    assert checker.wait_for_run(DAG_ID, run_id) == "success"
    states = checker.task_states(DAG_ID, run_id)
    assert states["commit"] == "skipped" and states["published"] == "skipped"
    assert decisions_for(run_id) == [("REJECTED", "maker", "checker", "RegistryCheckers")]
    assert committed_rows(run_id) == 0
    with db.transaction() as cur:
        cur.execute("SELECT status FROM intake.uploads WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == "REJECTED"


def test_an_immediate_answer_is_neither_lost_nor_misreported(airflow, inbox_file) -> None:
    """Answering the moment the step parks can meet Airflow 3.3.2's resume race (stack notes): a retry
    reuses the answer. Every end-to-end approval now answers at once; this one asserts no answer is lost."""
    checker = airflow("checker")
    run_id = start_run(airflow, inbox_file, rows=2)
    checker.wait_for_task_state(DAG_ID, run_id, "approve", PARKED)
    assert checker.answer(DAG_ID, run_id, "Approve").status_code == 200  # no pause: the racy case
    assert checker.wait_for_run(DAG_ID, run_id, timeout=400) == "success", checker.task_states(DAG_ID, run_id)
    assert decisions_for(run_id) == [("APPROVED", "maker", "checker", "RegistryCheckers")]
    assert committed_rows(run_id) == 2


def test_an_invalid_file_stops_before_any_approval_request(airflow, inbox_file) -> None:
    maker = airflow("maker")
    name = inbox_file("bad.csv", "code,label,amount\nok-1,x,1\nBAD CODE,,-5\n").name
    run_id = maker.trigger(DAG_ID, {"file": name}).json()["dag_run_id"]
    assert maker.wait_for_run(DAG_ID, run_id) == "failed"
    states = maker.task_states(DAG_ID, run_id)
    assert states["validate"] == "failed" and states["approve"] in {"upstream_failed", None}
    with db.transaction() as cur:
        cur.execute("SELECT status, invalid_row_count, error_report_path FROM intake.uploads WHERE run_id = %s",
                    (run_id,))
        status, invalid, report = cur.fetchone()
    assert (status, invalid) == ("INVALID", 2)
    assert "BAD CODE" in Path(report).read_text()


def test_a_path_outside_the_inbox_is_refused(airflow) -> None:
    maker = airflow("maker")
    run_id = maker.trigger(DAG_ID, {"file": "../../etc/passwd"}).json()["dag_run_id"]
    assert maker.wait_for_run(DAG_ID, run_id) == "failed"
    assert maker.task_states(DAG_ID, run_id)["intake"] == "failed"


TWO_CHECKERS_DAG = "platform_selftest_two_checkers"


def pending_for(client, run_id: str) -> list[dict]:
    return [p for p in client.pending_approvals() if p["task_instance"]["dag_run_id"] == run_id]


def test_two_distinct_checkers_approve_one_after_the_other(airflow, inbox_file) -> None:
    maker, checker, checker2 = airflow("maker"), airflow("checker"), airflow("checker2")
    run_id = maker.trigger(TWO_CHECKERS_DAG, {"file": selftest_file(inbox_file, rows=2)}).json()["dag_run_id"]
    checker.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve_1")
    first = pending_for(checker, run_id)
    assert [p["task_instance"]["task_id"] for p in first] == ["approve_1"]
    assert sorted(u["name"] for u in first[0]["assigned_users"]) == ["checker", "checker2"]
    assert "Approval 1 of 2" in first[0]["body"]
    assert checker.answer(TWO_CHECKERS_DAG, run_id, "Approve", "approve_1").status_code == 200

    checker2.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve")
    second = pending_for(checker2, run_id)
    assert [u["name"] for u in second[0]["assigned_users"]] == ["checker2"]  # the first checker is not asked again
    assert "already approved by checker" in second[0]["body"]
    assert checker.answer(TWO_CHECKERS_DAG, run_id, "Approve").status_code == 403
    assert maker.answer(TWO_CHECKERS_DAG, run_id, "Approve").status_code == 403
    assert committed_rows_of(TWO_CHECKERS_DAG, run_id) == 0

    assert checker2.answer(TWO_CHECKERS_DAG, run_id, "Approve").status_code == 200
    assert checker2.wait_for_run(TWO_CHECKERS_DAG, run_id) == "success"
    with db.transaction() as cur:
        cur.execute("SELECT outcome, checker, other_approvers, required_approvals, policy FROM ledger.decisions"
                    " WHERE dag_id = %s AND run_id = %s", (TWO_CHECKERS_DAG, run_id))
        assert cur.fetchall() == [("APPROVED", "checker2", ["checker"], 2, "distinct")]
        cur.execute("SELECT actor, action, outcome FROM ledger.audit_events WHERE object_id = %s ORDER BY event_id",
                    (f"{TWO_CHECKERS_DAG}/{run_id}",))
        events = cur.fetchall()
        cur.execute("SELECT approvals_required, approvals_given, status FROM marts.mart_approval_requests"
                    " WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == (2, 2, "APPROVED")
    assert events[:4] == [
        ("maker", "selftest_two_checkers.approval_requested", "WAITING"),
        ("checker", "selftest_two_checkers.approval_given", "APPROVED"),
        ("maker", "selftest_two_checkers.approval_requested", "WAITING"),
        ("checker2", "selftest_two_checkers.decision", "APPROVED"),
    ]
    assert committed_rows_of(TWO_CHECKERS_DAG, run_id) == 2


def test_a_rejection_by_the_first_checker_ends_the_run(airflow, inbox_file) -> None:
    maker, checker2 = airflow("maker"), airflow("checker2")
    run_id = maker.trigger(TWO_CHECKERS_DAG, {"file": selftest_file(inbox_file)}).json()["dag_run_id"]
    checker2.wait_until_parked(TWO_CHECKERS_DAG, run_id, "approve_1")
    assert checker2.answer(TWO_CHECKERS_DAG, run_id, "Reject", "approve_1").status_code == 200
    assert checker2.wait_for_run(TWO_CHECKERS_DAG, run_id) == "success"
    states = checker2.task_states(TWO_CHECKERS_DAG, run_id)
    assert states["approve"] == "skipped" and states["commit"] == "skipped"
    with db.transaction() as cur:
        cur.execute("SELECT outcome, checker, other_approvers FROM ledger.decisions WHERE dag_id = %s AND run_id = %s",
                    (TWO_CHECKERS_DAG, run_id))
        assert cur.fetchall() == [("REJECTED", "checker2", [])]
    assert committed_rows_of(TWO_CHECKERS_DAG, run_id) == 0
