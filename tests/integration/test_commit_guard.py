"""Commit appends exactly the proposal a checker other than the maker approved, once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid

import pytest

from benefitflow.core import db
from benefitflow.core.errors import WorkflowError
from benefitflow.payments.held_bills_release import WORKFLOW as RELEASE
from benefitflow.payments.payment_cycle import WORKFLOW as CYCLE
from benefitflow.payments.payroll import ABANDONED_PARTIAL_SECONDS, control_file, finish_payroll_files, payroll_dir
from benefitflow.payments.payroll import WORKFLOW as PAYROLL
from benefitflow.payments.payroll_reconciliation import WORKFLOW as RECONCILIATION
from benefitflow.programmes.beneficiary_status import WORKFLOW as STATUS
from benefitflow.programmes.benefit_plan_define import WORKFLOW as DEFINE
from benefitflow.programmes.enrolment import WORKFLOW as ENROLMENT
from benefitflow.selftest.platform_selftest import WORKFLOW
from benefitflow.selftest.platform_selftest_two_checkers import WORKFLOW as WORKFLOW_TWO_CHECKERS
from benefitflow.workflows import decisions, proposal_digest
from benefitflow.workflows.commit import commit_step
from benefitflow.workflows.decisions import Decision
from benefitflow.workflows.direct import record_direct_decision
from benefitflow.workflows.intake import intake_step, take_in_file
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.publish import UndeclaredWrite
from benefitflow.workflows.validate import validate_step
from tests.integration.programme_data import in_region, plan_document, query, register_region, run, tag

OPTIONS = {"on_invalid_rows": "reject_file"}


def csv_text(*amounts: str, code: str = "G") -> str:
    return "code,label,amount\n" + "".join(f"{code}-{i},x,{amount}\n" for i, amount in enumerate(amounts))


def propose_file(file_name: str, run_id: str) -> dict:
    """intake → validate → propose of a self-test file in run `guard/<run_id>`; the proposal summary."""
    upload = take_in_file(spec=WORKFLOW.intake.spec_for(OPTIONS), file=file_name, user="maker", dag_id="guard", run_id=run_id)
    validated = validate_step(workflow=WORKFLOW, taken=upload, options=OPTIONS, user="maker")
    return propose_step(workflow=WORKFLOW, taken=upload, validated=validated)


def proposed_upload(inbox_file, name: str) -> dict:
    return propose_file(inbox_file(name, csv_text("2.50", code=name[:8].upper())).name, name)


def decide(run_id: str, outcome: str, checker: str | None, proposal: dict, *, digest: str | None = None) -> None:
    with db.transaction() as cur:
        decisions.record(cur, Decision(operation="selftest", dag_id="guard", run_id=run_id, maker="maker",
                                       checker=checker, checker_group="RegistryCheckers", policy="any",
                                       outcome=outcome, upload_id=int(proposal["upload_id"]),
                                       proposal_digest=digest or proposal["proposal_digest"], maker_id="1",
                                       checker_id=None if checker is None else f"id-{checker}"))


def commit(run_id: str, proposal: dict) -> dict:
    return commit_step(workflow=WORKFLOW, dag_id="guard", run_id=run_id, taken=proposal,
                       user="maker")


def committed_rows(upload_id: int) -> int:
    return query("SELECT count(*) FROM ledger.selftest_records r JOIN ledger.commits c USING (commit_id)"
                 " WHERE c.upload_id = %s", upload_id)[0][0]


def digest_of(upload_id: int) -> str:
    with db.transaction() as cur:
        return proposal_digest.compute(cur, WORKFLOW.proposal_for({"upload_id": upload_id}))


def test_no_decision_no_commit(database, inbox_file) -> None:
    proposal = proposed_upload(inbox_file, "nodecision")
    with pytest.raises(WorkflowError, match="no recorded decision"):
        commit("nodecision", proposal)
    assert committed_rows(proposal["upload_id"]) == 0
    assert query("SELECT outcome FROM ledger.audit_events WHERE action = 'selftest.commit_refused'"
                 " AND object_id = 'guard/nodecision'") == [("REFUSED",)]


@pytest.mark.parametrize("outcome", ["REJECTED", "REFUSED", "TIMED_OUT"])
def test_anything_but_an_approval_commits_nothing(database, inbox_file, outcome: str) -> None:
    run_id = f"not{outcome.lower()}"
    proposal = proposed_upload(inbox_file, run_id)
    decide(run_id, outcome, None if outcome == "TIMED_OUT" else "checker", proposal)
    with pytest.raises(WorkflowError, match=outcome):
        commit(run_id, proposal)
    assert committed_rows(proposal["upload_id"]) == 0


def test_an_approval_commits_once_and_a_second_commit_returns_the_first(database, inbox_file) -> None:
    proposal = proposed_upload(inbox_file, "approved")
    decide("approved", "APPROVED", "checker", proposal)
    result = commit("approved", proposal)
    assert result["rows"] == 1 and committed_rows(proposal["upload_id"]) == 1
    again = commit("approved", proposal)  # a retried or cleared commit step
    assert (again["commit_id"], again["rows"], again["already_committed"]) == (result["commit_id"], 1, True)
    assert committed_rows(proposal["upload_id"]) == 1
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", proposal["upload_id"]) == [("APPLIED",)]
    assert query("SELECT proposal_digest FROM ledger.commits WHERE commit_id = %s", result["commit_id"]) == [
        (proposal["proposal_digest"],)]


def test_two_attempts_of_one_commit_at_once_commit_once_and_neither_fails(database, inbox_file) -> None:
    """A retry started while the try it replaced still runs (its worker thought lost): both pass the "already
    committed?" check, one commits, and the other, once it has the proposal's lock, returns that commit instead of
    failing the run and undoing what followed the commit (a payroll's or an export's file)."""
    import threading

    proposal = proposed_upload(inbox_file, "twoattempts")
    decide("twoattempts", "APPROVED", "checker", proposal)
    ref = WORKFLOW.proposal_for(proposal)
    results: list[dict] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            results.append(commit("twoattempts", proposal))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    with db.session_lock(ref.lock_key):  # both attempts wait at the proposal's lock, past the first check
        attempts = [threading.Thread(target=attempt) for _ in range(2)]
        for thread in attempts:
            thread.start()
        waiting = 0
        for _ in range(100):
            waiting = query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                            " AND datname = current_database()")[0][0]
            if waiting == 2:
                break
            threading.Event().wait(0.1)
        assert waiting == 2, "both attempts should wait at the proposal's lock"
    for thread in attempts:
        thread.join(60)
    assert errors == []
    assert sorted(result.get("already_committed", False) for result in results) == [False, True]
    assert results[0]["commit_id"] == results[1]["commit_id"]
    assert committed_rows(proposal["upload_id"]) == 1


def test_a_commit_writing_a_table_its_workflow_does_not_publish_from_lands_nothing(database, inbox_file) -> None:
    """The publish selection comes from the workflow's `writes`: a commit writing more is refused, not half-published."""
    proposal = proposed_upload(inbox_file, "undeclared")
    decide("undeclared", "APPROVED", "checker", proposal)
    silent = dataclasses.replace(WORKFLOW, commit=dataclasses.replace(WORKFLOW.commit, writes=()))
    with pytest.raises(UndeclaredWrite, match="selftest_records"):
        commit_step(workflow=silent, dag_id="guard", run_id="undeclared", taken=proposal,
                    user="maker")
    assert committed_rows(proposal["upload_id"]) == 0
    assert commit("undeclared", proposal)["rows"] == 1  # with its true `writes`, the same approval commits


def test_the_digest_is_the_proposal(database, inbox_file) -> None:
    """Same proposal, same digest; one changed row, amount or parameter, another digest."""
    first = propose_file(inbox_file("d.csv", csv_text("1.00", "2.00", code="DG")).name, "digest-a")
    assert len(first["proposal_digest"]) == 64
    assert digest_of(first["upload_id"]) == first["proposal_digest"]  # recomputed: the same
    others = [
        propose_file(inbox_file("d.csv", csv_text("1.00", "2.01", code="DG")).name, "digest-b"),  # an amount
        propose_file(inbox_file("d.csv", csv_text("1.00", code="DG")).name, "digest-c"),  # a row fewer
    ]
    digests = {first["proposal_digest"], *(other["proposal_digest"] for other in others)}
    assert len(digests) == 3
    # The same rows under another operation, or of another upload, are another proposal.
    with db.transaction() as cur:
        assert proposal_digest.compute(cur, WORKFLOW_TWO_CHECKERS.proposal_for(first)) not in digests


def test_the_digest_hashed_and_sorted_in_parallel_workers_is_the_one_of_a_single_process(database, inbox_file) -> None:
    """Migration 011 hashes and sorts the rows in parallel workers (a Gather Merge): the value is 009's, one
    process sorting every row hash, whatever order the rows were written in."""
    amounts = [f"{i}.00" for i in range(300, 0, -1)]  # written in descending order
    upload_id = int(propose_file(inbox_file("par.csv", csv_text(*amounts, code="PAR")).name, "parallel")["upload_id"])
    rows = ("SELECT sha256(record_send(p)) AS row_hash FROM proposals.platform_selftest_proposal AS p"
            " WHERE upload_id = %s ORDER BY 1")
    with db.transaction() as cur:
        # Parallel workers even for this small proposal, as for one of a million rows (read whole, not through
        # the index on upload_id a small proposal among others is found by).
        cur.execute("SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;"
                    " SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;"
                    " SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
        cur.execute("EXPLAIN " + rows, (upload_id,))
        assert "Gather Merge" in "\n".join(line for (line,) in cur.fetchall())
        cur.execute("SELECT ledger.proposal_rows_digest('proposals.platform_selftest_proposal', 'upload_id', %s)", (upload_id,))
        in_parallel = bytes(cur.fetchone()[0])
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cur.execute("SELECT sha256(string_agg(row_hash, ''::bytea ORDER BY row_hash)) FROM"
                    " (SELECT sha256(record_send(p)) AS row_hash FROM proposals.platform_selftest_proposal AS p"
                    "  WHERE upload_id = %s) AS hashed", (upload_id,))
        in_one_process = bytes(cur.fetchone()[0])
    assert in_parallel == in_one_process


def test_an_approval_of_another_proposal_commits_nothing(database, inbox_file) -> None:
    proposal = proposed_upload(inbox_file, "otherdigest")
    decide("otherdigest", "APPROVED", "checker", proposal, digest="0" * 64)
    with pytest.raises(WorkflowError, match="the proposal changed after the checker saw it"):
        commit("otherdigest", proposal)
    assert committed_rows(proposal["upload_id"]) == 0
    [(reason,)] = query("SELECT details ->> 'reason' FROM ledger.audit_events WHERE action = 'selftest.commit_refused'"
                        " AND object_id = 'guard/otherdigest'")
    assert "000000000000" in reason and proposal["proposal_digest"][:12] in reason


def test_a_run_that_takes_in_a_changed_file_cannot_commit_it_with_the_old_approval(database, inbox_file) -> None:
    """The bait and switch, in process: approve A, take in B in the same run, commit: refused."""
    path = inbox_file("bait.csv", csv_text("1.00", code="BAIT"))
    bait = propose_file(path.name, "switch")
    decide("switch", "APPROVED", "checker", bait)
    path.write_text(csv_text(*["999999.00"] * 50, code="BAIT"))
    switched = propose_file(path.name, "switch")
    assert switched["upload_id"] != bait["upload_id"]
    assert query("SELECT status FROM intake.uploads WHERE upload_id = %s", bait["upload_id"]) == [("SUPERSEDED",)]
    with pytest.raises(WorkflowError, match="the proposal changed after the checker saw it"):
        commit("switch", switched)
    with pytest.raises(WorkflowError):  # nor can the superseded upload be committed: its proposal is gone
        commit("switch", bait)
    assert committed_rows(switched["upload_id"]) == committed_rows(bait["upload_id"]) == 0


def test_a_run_takes_in_the_same_file_again_and_a_committed_run_commits_nothing_else(database, inbox_file) -> None:
    path = inbox_file("again.csv", csv_text("3.00", code="AGAIN"))
    first = propose_file(path.name, "again")
    second = propose_file(path.name, "again")  # a retried intake: the same file is accepted for its own run
    assert second["upload_id"] != first["upload_id"] and second["proposal_digest"] != first["proposal_digest"]
    decide("again", "APPROVED", "checker", second)
    commit("again", second)
    third = propose_file(inbox_file("again.csv", csv_text("4.00", code="AGAIN")).name, "again")
    with pytest.raises(WorkflowError, match=f"already committed upload {second['upload_id']}"):
        commit("again", third)
    with pytest.raises(WorkflowError, match="already uploaded"):  # an applied upload is never superseded
        propose_file(path.name, "again")
    assert committed_rows(third["upload_id"]) == 0 and committed_rows(second["upload_id"]) == 1


def test_the_database_refuses_an_approval_without_a_digest_or_by_the_makers_user_id(database, inbox_file) -> None:
    proposal = proposed_upload(inbox_file, "nodigest")
    with pytest.raises(Exception, match="decision_approved_names_its_proposal"), db.transaction() as cur:
        cur.execute("INSERT INTO ledger.decisions (operation, dag_id, run_id, maker, checker, checker_group, policy,"
                    " outcome, maker_id, checker_id) VALUES ('selftest', 'guard', 'nodigest', 'maker', 'checker',"
                    " 'RegistryCheckers', 'any', 'APPROVED', '1', '2')")
    with pytest.raises(Exception, match="decision_approved_by_other_user_ids"), db.transaction() as cur:
        # A renamed maker is still the maker.
        cur.execute("INSERT INTO ledger.decisions (operation, dag_id, run_id, maker, checker, checker_group, policy,"
                    " outcome, proposal_digest, maker_id, checker_id) VALUES ('selftest', 'guard', 'nodigest',"
                    " 'maker', 'renamed-maker', 'RegistryCheckers', 'any', 'APPROVED', %s, '1', '1')",
                    (proposal["proposal_digest"],))


def two_checker_decision(run_id: str, checker: str, other_approvers: tuple[str, ...], proposal: dict) -> None:
    with db.transaction() as cur:
        decisions.record(cur, Decision(operation="selftest_two_checkers", dag_id="guard", run_id=run_id,
                                       maker="maker", checker=checker, checker_group="RegistryCheckers",
                                       policy="distinct", outcome="APPROVED", upload_id=int(proposal["upload_id"]),
                                       required_approvals=2, other_approvers=other_approvers,
                                       proposal_digest=proposal["proposal_digest"], maker_id="id-maker",
                                       checker_id=f"id-{checker}",
                                       other_approver_ids=tuple(f"id-{name}" for name in other_approvers)))


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
    proposal = proposed_upload(inbox_file, run_id)
    with pytest.raises(Exception, match="decision_approved_by"):
        two_checker_decision(run_id, checker, others, proposal)
    with pytest.raises(WorkflowError, match="no recorded decision"):
        commit(run_id, proposal)
    assert committed_rows(proposal["upload_id"]) == 0


def test_two_distinct_checkers_commit(database, inbox_file) -> None:
    proposal = proposed_upload(inbox_file, "twochecked")
    two_checker_decision("twochecked", "checker2", ("checker",), proposal)
    commit_step(workflow=WORKFLOW, dag_id="guard", run_id="twochecked", taken=proposal,
                user="maker")
    assert committed_rows(proposal["upload_id"]) == 1
    assert query("SELECT other_approvers, required_approvals FROM ledger.decisions WHERE run_id = 'twochecked'") == [
        (["checker"], 2)]


# -- request workflows -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def plan_with_bills(database) -> str:
    return billed_plan()


def billed_plan() -> str:
    """A plan of a region's twelve people, all ACTIVE, with cycle C1 billed."""
    region, code = register_region(), f"PG-{tag()}"
    run(DEFINE, plan=plan_document(code, entitlement={"fixed_amount": "100.00"}))
    run(ENROLMENT, plan=code, target_status="ACTIVE", criteria={"all": [in_region(region)]})
    run(CYCLE, checker="payment_checker", plan=code, cycle="C1", period_start="2026-01-01", period_end="2026-01-31")
    return code


def propose_payroll(code: str, run_id: str) -> tuple[dict, dict]:
    options = {"cycle": "C1", "plan": code}
    request = intake_step(workflow=PAYROLL, options=options, user="maker", dag_id="guard", run_id=run_id)
    validated = validate_step(workflow=PAYROLL, taken=request, options=options, user="maker")
    return request, propose_step(workflow=PAYROLL, taken=request, validated=validated)


def test_a_payment_cycle_whose_proposal_changed_after_the_approval_commits_nothing(database, plan_with_bills) -> None:
    code = plan_with_bills
    options = {"plan": code, "cycle": "C2", "period_start": "2026-02-01", "period_end": "2026-02-28"}
    run_id = uuid.uuid4().hex
    request = intake_step(workflow=CYCLE, options=options, user="maker", dag_id="guard", run_id=run_id)
    validated = validate_step(workflow=CYCLE, taken=request, options=options, user="maker")
    shown = propose_step(workflow=CYCLE, taken=request, validated=validated)
    assert record_direct_decision("payment_cycle", "guard", run_id, "maker", "payment_checker", shown,
                                  request_id=request["request_id"])
    # Someone re-runs validate and propose after a suspension: fewer bills than the checker approved.
    run(STATUS, plan=code, status="SUSPENDED", reason="moved away",
        criteria={"all": [{"field": "role", "op": "=", "value": "SPOUSE"}]})
    validated = validate_step(workflow=CYCLE, taken=request, options=options, user="maker")
    changed = propose_step(workflow=CYCLE, taken=request, validated=validated)
    assert changed["proposal_digest"] != shown["proposal_digest"] and changed["bills"] < shown["bills"]
    with pytest.raises(WorkflowError, match="the proposal changed after the checker saw it"):
        commit_step(workflow=CYCLE, dag_id="guard", run_id=run_id, taken=request, user="maker")
    assert query("SELECT count(*) FROM ledger.payment_cycles WHERE plan_code = %s AND cycle_code = 'C2'",
                 code) == [(0,)]
    assert query("SELECT count(*) FROM ledger.audit_events WHERE action = 'payment_cycle.commit_refused'"
                 " AND object_id = %s", f"guard/{run_id}") == [(1,)]


def test_a_changed_request_parameter_is_another_digest(database, plan_with_bills) -> None:
    run_id = uuid.uuid4().hex
    request, proposal = propose_payroll(plan_with_bills, run_id)
    ref = PAYROLL.proposal_for(request)
    with db.transaction() as cur:
        assert proposal_digest.compute(cur, ref) == proposal["proposal_digest"]
        cur.execute("UPDATE intake.requests SET parameters = parameters || '{\"payment_point\": \"Elsewhere\"}'"
                    " WHERE request_id = %s", (request["request_id"],))
        assert proposal_digest.compute(cur, ref) != proposal["proposal_digest"]
        cur.connection.rollback()
    # Rejected, so its bills are free for the next test's payroll.
    assert not record_direct_decision("payroll", "guard", run_id, "maker", None, {}, request_id=request["request_id"])


# The commit step of a process that died once its transaction went through, before its file was put in place.
COMMIT_CUT_SHORT = dataclasses.replace(PAYROLL, commit=dataclasses.replace(PAYROLL.commit, after=None))


def committed_payroll(code: str) -> tuple[dict, dict, str]:
    """A payroll approved and committed by a process that died before its file got its name: request, proposal,
    run id."""
    run_id = uuid.uuid4().hex
    request, proposal = propose_payroll(code, run_id)
    assert record_direct_decision("payroll", "guard", run_id, "maker", "payment_checker", proposal,
                                  request_id=request["request_id"])
    commit_step(workflow=COMMIT_CUT_SHORT, dag_id="guard", run_id=run_id, taken=request, user="maker")
    assert not (payroll_dir() / f"{proposal['payroll']}.csv").exists()
    return request, proposal, run_id


def test_a_request_whose_selection_a_crash_emptied_is_proposed_only_once_selected_again(database) -> None:
    """intake.request_selection is UNLOGGED: a crash between validate and propose empties it, and propose refuses to
    propose nothing. validate run again (its retry after its transaction went through) selects anew, not twice; and
    propose run again gives the same proposal. (A plan of its own: the payroll waiting for approval holds its bills.)"""
    code = billed_plan()
    options = {"cycle": "C1", "plan": code}
    request = intake_step(workflow=PAYROLL, options=options, user="maker", dag_id="guard", run_id=uuid.uuid4().hex)
    validate_step(workflow=PAYROLL, taken=request, options=options, user="maker")
    with db.transaction() as cur:  # what PostgreSQL's recovery does to an UNLOGGED table (to every request's rows)
        cur.execute("DELETE FROM intake.request_selection WHERE request_id = %s", (request["request_id"],))
    with pytest.raises(WorkflowError, match="clear `validate` to select it again"):
        propose_step(workflow=PAYROLL, taken=request, validated={})
    for _attempt in range(2):
        validated = validate_step(workflow=PAYROLL, taken=request, options=options, user="maker")
    proposal = propose_step(workflow=PAYROLL, taken=request, validated=validated)
    assert proposal["bills"] == query("SELECT count(*) FROM payments.bills WHERE plan_code = %s AND cycle_code = 'C1'",
                                      code)[0][0] > 0
    assert propose_step(workflow=PAYROLL, taken=request, validated=validated) == proposal


def test_a_payroll_commit_run_twice_makes_one_payroll_and_one_file(database, plan_with_bills) -> None:
    request, proposal, run_id = committed_payroll(plan_with_bills)
    path = payroll_dir() / f"{proposal['payroll']}.csv"
    approved = path.with_name(f"{path.name}.partial").read_bytes()
    # The step's retry finds the commit made and puts its file in place.
    again = commit_step(workflow=PAYROLL, dag_id="guard", run_id=run_id, taken=request, user="maker")
    assert path.read_bytes() == approved and control_file(path).exists()
    assert query("SELECT count(*) FROM ledger.payrolls WHERE request_id = %s", request["request_id"]) == [(1,)]
    assert query("SELECT commit_id FROM ledger.commits WHERE run_id = %s", run_id) == [(again["commit_id"],)]
    assert not path.with_name(f"{path.name}.partial").exists()
    # Recorded as published, but its process died before the rename: the `.partial` is only given its name.
    path.rename(path.with_name(f"{path.name}.partial"))
    control_file(path).unlink()
    assert f"finished the file of committed payroll {path.name}" in finish_payroll_files()
    assert path.read_bytes() == approved and control_file(path).exists()
    # Published once, a payroll is never written again: its file gone (to the provider, say), a third run adds none.
    path.unlink()
    commit_step(workflow=PAYROLL, dag_id="guard", run_id=run_id, taken=request, user="maker")
    assert not path.exists()
    assert query("SELECT count(*) FROM ledger.payroll_files_published f JOIN ledger.payrolls p USING (payroll_id)"
                 " WHERE p.request_id = %s", request["request_id"]) == [(1,)]


def test_a_payroll_whose_commit_died_before_its_file_was_named_is_finished_by_the_next_payments_run(database) -> None:
    """The commit went through, but its process died before the file got its name, and the run failed for good (no
    retry left): the next run of any payments workflow finishes the file, byte for byte the approved one (from the
    ledger if the `.partial` file is lost too), and removes what a failed commit abandoned long ago (not what a commit
    is writing now)."""
    code = billed_plan()
    _request, proposal, _run_id = committed_payroll(code)
    path = payroll_dir() / f"{proposal['payroll']}.csv"
    partial = path.with_name(f"{path.name}.partial")
    approved = partial.read_bytes()
    partial.unlink()  # lost as well: written again from the ledger
    abandoned = [payroll_dir() / f"ABANDONED-{tag()}.csv.partial", payroll_dir() / f".ABANDONED-{tag()}.csv.partial.x.new"]
    current = payroll_dir() / f"NOW-{tag()}.csv.partial"
    try:
        for left in (*abandoned, current):
            left.write_text("Payroll Name\n")
        for left in abandoned:
            os.utime(left, (time.time() - ABANDONED_PARTIAL_SECONDS - 60,) * 2)

        for workflow in (CYCLE, PAYROLL, RECONCILIATION, RELEASE):  # each payments workflow recovers first
            assert workflow.recover is finish_payroll_files, workflow.dag_id
        options = {"plan": code, "cycle": "C9", "period_start": "2026-09-01", "period_end": "2026-09-30"}
        intake_step(workflow=CYCLE, options=options, user="maker", dag_id="guard", run_id=uuid.uuid4().hex)

        assert path.read_bytes() == approved
        assert json.loads(control_file(path).read_text())["sha256"] == hashlib.sha256(approved).hexdigest()
        assert not partial.exists() and not any(left.exists() for left in abandoned) and current.exists()
        assert not [line for line in finish_payroll_files() if proposal["payroll"] in line]  # nothing left to do
    finally:
        for left in (*abandoned, current):
            left.unlink(missing_ok=True)
