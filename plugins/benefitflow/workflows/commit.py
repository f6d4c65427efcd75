"""Step 5, commit: the approved proposal appended to the ledger in one transaction, with the decision
it rests on. The digest is recomputed under the proposal's lock: an approval of anything else is
refused. Run again after its transaction went through, it returns that commit instead of appending twice."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from benefitflow.core import audit, db, file_store
from benefitflow.core.errors import CommitConflict, WorkflowError
from benefitflow.workflows import decisions, inputs, proposal_digest, publish
from benefitflow.workflows.declaration import Cursor, Taken, Workflow
from benefitflow.workflows.intake import stop_request, stop_upload
from benefitflow.workflows.proposal_digest import ProposalRef


def commit_step(*, workflow: Workflow, dag_id: str, run_id: str, taken: Taken, user: str) -> dict[str, Any]:
    proposal = workflow.proposal_for(taken)
    key = proposal.key
    after, after_failure = workflow.commit.after, workflow.commit.after_failure
    if (earlier := earlier_commit(workflow.operation, dag_id, run_id, proposal)) is not None:
        if after is not None:
            after(key)
        return earlier
    try:
        with db.transaction() as cur:
            decision_id, commit_id = append_commit(cur, proposal, dag_id, run_id)
            appended = workflow.commit.append(cur, commit_id, proposal)
            publish.check_writes(cur, workflow.operation, workflow.commit.writes)
            publish.refresh_statistics(cur)
            _mark_applied(cur, proposal)
            audit.record(cur, actor=user, action=f"{workflow.operation}.commit", object_type=proposal.input_kind,
                         object_id=key, outcome="COMMITTED",
                         details={"commit_id": commit_id, "decision_id": decision_id, "rows": appended})
    except Exception as exc:
        # Another attempt of this step (a retry while the try it replaced still ran: a worker thought lost) may
        # have committed while this one waited for the proposal's lock: that commit stands, and what follows it.
        if (earlier := earlier_commit(workflow.operation, dag_id, run_id, proposal)) is not None:
            if after is not None:
                after(key)
            return earlier
        if after_failure is not None:
            after_failure(key)
        if isinstance(exc, decisions.NotApprovedError):
            refuse_commit(proposal, dag_id, run_id, user, str(exc))
            raise WorkflowError(str(exc)) from exc
        if isinstance(exc, CommitConflict | file_store.OutboxFull):
            stop = stop_request if proposal.is_request else stop_upload
            stop(key, user, f"approved but not applied: {exc}", status="FAILED")
        raise
    if after is not None:
        after(key)
    return {"commit_id": commit_id, "decision_id": decision_id, "rows": appended}


def _mark_applied(cur: Cursor, proposal: ProposalRef) -> None:
    if proposal.upload_id is not None:
        cur.execute("SELECT invalid_row_count FROM intake.uploads WHERE upload_id = %s", (proposal.upload_id,))
        invalid = cur.fetchone()[0] or 0
        inputs.set_status(cur, proposal.upload_id, "PARTIALLY_APPLIED" if invalid else "APPLIED")
        return
    inputs.set_request_status(cur, proposal.request_id, "APPLIED")
    # A file given as a parameter (e.g. a list of ids) is applied with its request.
    cur.execute("SELECT (document->>'upload_id')::bigint FROM intake.requests WHERE request_id = %s",
                (proposal.request_id,))
    upload_id = cur.fetchone()[0]
    if upload_id is not None:
        inputs.set_status(cur, upload_id, "APPLIED")


def append_commit(cur: Cursor, proposal: ProposalRef, dag_id: str, run_id: str) -> tuple[int, int]:
    """The commit record for the approval of exactly this proposal; return decision and commit ids.

    The digest is recomputed here, inside the commit's transaction and under the proposal's lock,
    from the rows about to be appended: an approval of anything else is refused.
    """
    proposal_digest.lock_in_transaction(cur, proposal)
    _refuse_superseded(cur, proposal, dag_id, run_id)
    digest = proposal_digest.compute(cur, proposal)
    decision_id = decisions.require_approval(cur, dag_id, run_id, upload_id=proposal.upload_id,
                                             request_id=proposal.request_id, digest=digest)
    cur.execute(
        "INSERT INTO ledger.commits (operation, dag_id, run_id, decision_id, upload_id, request_id, proposal_digest)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING commit_id",
        (proposal.operation, dag_id, run_id, decision_id, proposal.upload_id, proposal.request_id, digest),
    )
    return decision_id, int(cur.fetchone()[0])


def _refuse_superseded(cur: Cursor, proposal: ProposalRef, dag_id: str, run_id: str) -> None:
    table = "requests" if proposal.is_request else "uploads"
    cur.execute(sql.SQL("SELECT status FROM intake.{} WHERE {} = %s FOR UPDATE").format(
        sql.Identifier(table), sql.Identifier(proposal.key_column)), (proposal.key,))
    if (found := cur.fetchone()) is None or found[0] == "SUPERSEDED":
        raise decisions.NotApprovedError(
            f"run {dag_id}/{run_id}: {proposal.input_name} was superseded "
            "(its run took in its input again): nothing is committed")


def earlier_commit(operation: str, dag_id: str, run_id: str, proposal: ProposalRef) -> dict[str, Any] | None:
    """This run's commit if it already went through (a retried or cleared commit step), else None.

    A run commits once: if it committed another upload or request (its input was taken in
    again after the commit), nothing more is committed.
    """
    with db.transaction() as cur:
        cur.execute(
            "SELECT c.commit_id, c.decision_id, c.upload_id, c.request_id,"
            " (SELECT (e.details ->> 'rows')::bigint FROM ledger.audit_events e WHERE e.action = %s"
            "  AND e.details ->> 'commit_id' = c.commit_id::text ORDER BY e.event_id LIMIT 1)"
            " FROM ledger.commits c WHERE c.dag_id = %s AND c.run_id = %s",
            (f"{operation}.commit", dag_id, run_id),
        )
        found = cur.fetchone()
    if found is None:
        return None
    commit_id, decision_id, upload_id, request_id, rows = found
    if (upload_id, request_id) != (proposal.upload_id, proposal.request_id):
        raise WorkflowError(
            f"run {dag_id}/{run_id} already committed {_input_name(upload_id, request_id)} (commit {commit_id}); "
            f"it does not commit {proposal.input_name} too: start a new run")
    return {"commit_id": commit_id, "decision_id": decision_id, "rows": rows, "already_committed": True}


def _input_name(upload_id: int | None, request_id: int | None) -> str:
    return f"request {request_id}" if request_id is not None else f"upload {upload_id}"


def refuse_commit(proposal: ProposalRef, dag_id: str, run_id: str, user: str, reason: str) -> None:
    """The refusal is an audit event of its own: the commit's transaction that found it was rolled back."""
    with db.transaction() as cur:
        audit.record(cur, actor=user, action=f"{proposal.operation}.commit_refused", object_type="run",
                     object_id=f"{dag_id}/{run_id}", outcome="REFUSED",
                     details={"reason": reason, "upload_id": proposal.upload_id, "request_id": proposal.request_id})
