"""Commit appends only what a checker other than the maker approved, once."""

import pytest

from benefitflow import db, decisions
from benefitflow.decisions import Decision, NotApprovedError
from benefitflow.selftest import WORKFLOW
from benefitflow.workflow import commit_step, intake_step, propose_step, validate_step


def proposed_upload(inbox_file, name: str) -> int:
    upload = intake_step(spec=WORKFLOW.spec, file=inbox_file(name, f"code,label,amount\n{name[:8].upper()},x,2.50\n").name,
                         user="maker", dag_id="guard", run_id=name)
    validated = validate_step(workflow=WORKFLOW, upload=upload, options={"on_invalid_rows": "reject_file"}, user="maker")
    propose_step(workflow=WORKFLOW, upload=upload, validated=validated)
    return int(upload["upload_id"])


def decide(run_id: str, outcome: str, checker: str | None, upload_id: int) -> None:
    with db.transaction() as cur:
        decisions.record(cur, Decision(operation="selftest", dag_id="guard", run_id=run_id, maker="maker",
                                       checker=checker, checker_group="RegistryCheckers", policy="any",
                                       outcome=outcome, upload_id=upload_id))


def committed_rows(upload_id: int) -> int:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM ledger.selftest_records r JOIN ledger.commits c USING (commit_id)"
                    " WHERE c.upload_id = %s", (upload_id,))
        return cur.fetchone()[0]


def test_no_decision_no_commit(database, inbox_file) -> None:
    upload_id = proposed_upload(inbox_file, "nodecision")
    with pytest.raises(NotApprovedError, match="no recorded decision"):
        commit_step(workflow=WORKFLOW, dag_id="guard", run_id="nodecision", upload_id=upload_id, user="maker")
    assert committed_rows(upload_id) == 0


@pytest.mark.parametrize("outcome", ["REJECTED", "REFUSED", "TIMED_OUT"])
def test_anything_but_an_approval_commits_nothing(database, inbox_file, outcome: str) -> None:
    run_id = f"not{outcome.lower()}"
    upload_id = proposed_upload(inbox_file, run_id)
    decide(run_id, outcome, None if outcome == "TIMED_OUT" else "checker", upload_id)
    with pytest.raises(NotApprovedError, match=outcome):
        commit_step(workflow=WORKFLOW, dag_id="guard", run_id=run_id, upload_id=upload_id, user="maker")
    assert committed_rows(upload_id) == 0


def test_an_approval_commits_once(database, inbox_file) -> None:
    upload_id = proposed_upload(inbox_file, "approved")
    decide("approved", "APPROVED", "checker", upload_id)
    result = commit_step(workflow=WORKFLOW, dag_id="guard", run_id="approved", upload_id=upload_id, user="maker")
    assert result["rows"] == 1 and committed_rows(upload_id) == 1
    with pytest.raises(Exception, match="commit_once_per_run"):
        commit_step(workflow=WORKFLOW, dag_id="guard", run_id="approved", upload_id=upload_id, user="maker")
    assert committed_rows(upload_id) == 1
    with db.transaction() as cur:
        cur.execute("SELECT status FROM intake.uploads WHERE upload_id = %s", (upload_id,))
        assert cur.fetchone()[0] == "APPLIED"


def two_checker_decision(run_id: str, checker: str, other_approvers: tuple[str, ...], upload_id: int) -> None:
    with db.transaction() as cur:
        decisions.record(cur, Decision(operation="selftest_two_checkers", dag_id="guard", run_id=run_id,
                                       maker="maker", checker=checker, checker_group="RegistryCheckers",
                                       policy="distinct", outcome="APPROVED", upload_id=upload_id,
                                       required_approvals=2, other_approvers=other_approvers))


@pytest.mark.parametrize(
    ("checker", "others", "why"),
    [
        ("checker2", (), "only one checker"),
        ("checker", ("checker",), "the same checker twice"),
        ("checker2", ("maker",), "the maker among the approvers"),
    ],
)
def test_the_database_refuses_an_approval_without_enough_distinct_checkers(
    database, inbox_file, checker: str, others: tuple[str, ...], why: str,
) -> None:
    run_id = f"few-{abs(hash(why)) % 10**8}"
    upload_id = proposed_upload(inbox_file, run_id)
    with pytest.raises(Exception, match="decision_approved_by_enough_distinct_checkers"):
        two_checker_decision(run_id, checker, others, upload_id)
    with pytest.raises(NotApprovedError, match="no recorded decision"):
        commit_step(workflow=WORKFLOW, dag_id="guard", run_id=run_id, upload_id=upload_id, user="maker")
    assert committed_rows(upload_id) == 0


def test_two_distinct_checkers_commit(database, inbox_file) -> None:
    upload_id = proposed_upload(inbox_file, "twochecked")
    two_checker_decision("twochecked", "checker2", ("checker",), upload_id)
    commit_step(workflow=WORKFLOW, dag_id="guard", run_id="twochecked", upload_id=upload_id, user="maker")
    assert committed_rows(upload_id) == 1
    with db.transaction() as cur:
        cur.execute("SELECT other_approvers, required_approvals FROM ledger.decisions WHERE run_id = 'twochecked'")
        assert cur.fetchone() == (["checker"], 2)
