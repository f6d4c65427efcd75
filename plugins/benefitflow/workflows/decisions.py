"""Approval decisions in the ledger, and the guard commit steps rely on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2.extensions

from benefitflow.core import audit
from benefitflow.workflows import inputs
from benefitflow.workflows.proposal_digest import short

OUTCOMES = ("APPROVED", "REJECTED", "REFUSED", "TIMED_OUT")


class NotApprovedError(RuntimeError):
    """A commit was attempted for a run with no valid approval."""


@dataclass(frozen=True)
class Decision:
    operation: str
    dag_id: str
    run_id: str
    maker: str
    checker: str | None
    checker_group: str
    policy: str
    outcome: str
    reason: str | None = None
    upload_id: int | None = None
    request_id: int | None = None
    requested_at: datetime | None = None
    summary: dict[str, Any] | None = None
    required_approvals: int = 1
    other_approvers: tuple[str, ...] = ()
    proposal_digest: str | None = None
    maker_id: str | None = None
    checker_id: str | None = None
    other_approver_ids: tuple[str, ...] = ()
    run_clear_number: int = 0


def record(cur: psycopg2.extensions.cursor, decision: Decision) -> int:
    """Append the decision and its audit event (same transaction); return the decision id.

    An upload or request the decision does not approve is REJECTED from then on, with the reason.
    """
    if decision.outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {decision.outcome!r}")
    cur.execute(
        "INSERT INTO ledger.decisions (operation, dag_id, run_id, upload_id, request_id, maker, checker,"
        " checker_group, policy, outcome, reason, summary, requested_at, required_approvals, other_approvers,"
        " proposal_digest, maker_id, checker_id, other_approver_ids, run_clear_number)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::text[], %s, %s, %s,"
        " %s::text[], %s)"
        " RETURNING decision_id",
        (
            decision.operation, decision.dag_id, decision.run_id, decision.upload_id, decision.request_id,
            decision.maker,
            decision.checker, decision.checker_group, decision.policy, decision.outcome, decision.reason,
            json.dumps(decision.summary or {}, default=str), decision.requested_at, decision.required_approvals,
            list(decision.other_approvers), decision.proposal_digest, decision.maker_id, decision.checker_id,
            list(decision.other_approver_ids), decision.run_clear_number,
        ),
    )
    decision_id = int(cur.fetchone()[0])
    audit.record(
        cur,
        actor=decision.checker or "system",
        action=f"{decision.operation}.decision",
        object_type="run",
        object_id=f"{decision.dag_id}/{decision.run_id}",
        outcome=decision.outcome,
        details={
            "decision_id": decision_id, "maker": decision.maker, "checker": decision.checker,
            "group": decision.checker_group, "policy": decision.policy, "reason": decision.reason,
            "required_approvals": decision.required_approvals, "other_approvers": list(decision.other_approvers),
            "upload_id": decision.upload_id, "request_id": decision.request_id,
            "proposal_digest": decision.proposal_digest, "maker_id": decision.maker_id,
            "checker_id": decision.checker_id,
        },
    )
    if decision.outcome != "APPROVED":
        why = f"{decision.outcome}: {decision.reason or f'rejected by {decision.checker}'}"
        if decision.upload_id is not None:
            inputs.set_status(cur, decision.upload_id, "REJECTED", message=why)
        if decision.request_id is not None:
            inputs.set_request_status(cur, decision.request_id, "REJECTED", message=why)
    return decision_id


_LATEST_COLUMNS = ("decision_id", "outcome", "maker", "checker", "decided_at", "required_approvals", "other_approvers",
                   "upload_id", "request_id", "proposal_digest", "maker_id", "checker_id", "other_approver_ids",
                   "run_clear_number")


def latest_for_run(cur: psycopg2.extensions.cursor, dag_id: str, run_id: str) -> dict[str, Any] | None:
    cur.execute(
        f"SELECT {', '.join(_LATEST_COLUMNS)} FROM ledger.decisions"
        " WHERE dag_id = %s AND run_id = %s ORDER BY decision_id DESC LIMIT 1",
        (dag_id, run_id),
    )
    row = cur.fetchone()
    return dict(zip(_LATEST_COLUMNS, row, strict=True)) if row else None


def is_for(decision: dict[str, Any], *, upload_id: int | None, request_id: int | None, digest: str) -> bool:
    """The decision was given for exactly this proposal (same upload or request, same digest)."""
    return (decision["proposal_digest"] == digest and decision["upload_id"] == upload_id
            and decision["request_id"] == request_id)


def require_approval(
    cur: psycopg2.extensions.cursor, dag_id: str, run_id: str, *, upload_id: int | None, request_id: int | None,
    digest: str,
) -> int:
    """The id of the approval of exactly this proposal; refuse anything else.

    `digest` is recomputed by the caller from what it is about to append. Marking the approval
    task "success" by hand, skipping it, or an approval given to another upload, request or
    version of the proposal (a re-run upstream step, a changed file) commits nothing.
    """
    run = f"run {dag_id}/{run_id}"
    latest = latest_for_run(cur, dag_id, run_id)
    if latest is None:
        raise NotApprovedError(f"{run} has no recorded decision: nothing is committed")
    if latest["outcome"] != "APPROVED":
        raise NotApprovedError(f"{run} was {latest['outcome']}: nothing is committed")
    if not is_for(latest, upload_id=upload_id, request_id=request_id, digest=digest):
        raise NotApprovedError(
            f"{run}: the approval was given to proposal {short(latest['proposal_digest'])} "
            f"({_input(latest['upload_id'], latest['request_id'])}); what would be committed now is proposal "
            f"{short(digest)} ({_input(upload_id, request_id)}): the proposal changed after the checker saw it, "
            "nothing is committed")
    if not latest["checker"] or latest["checker"] == latest["maker"] or (
            latest["checker_id"] is None or latest["checker_id"] == latest["maker_id"]):
        raise NotApprovedError(f"{run}: the approval is not by a checker other than the maker")
    approvers = {latest["checker_id"], *latest["other_approver_ids"]} - {latest["maker_id"]}
    if len(approvers) < latest["required_approvals"]:
        raise NotApprovedError(f"{run}: approved by {len(approvers)} distinct checker(s), "
                               f"the policy needs {latest['required_approvals']}: nothing is committed")
    return int(latest["decision_id"])


def _input(upload_id: int | None, request_id: int | None) -> str:
    return f"request {request_id}" if request_id is not None else f"upload {upload_id}"
