"""The `grievance_status` workflow: move tickets along RECEIVED → OPEN → IN_PROGRESS → RESOLVED → CLOSED.

Allowed changes are the rows of `ledger.grievance_status_transitions` (reopening a RESOLVED or
CLOSED ticket is one of them), also enforced by a trigger on the ledger. Every change carries a
comment; a RESOLVED ticket's comment is its resolution.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg2.extensions
from airflow.sdk import Param

from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.core.parameters import required_text
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FormCheck,
    FormIntake,
    Options,
    Proposal,
    Publish,
    Workflow,
)
from benefitflow.workflows.proposal_digest import ProposalRef

TARGET_STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED")
CODE = re.compile(r"^GR[0-9]{8}$")
MAX_COMMENT = 4000
MAX_TICKETS = 10_000


def codes_of(options: Options) -> list[str]:
    codes = options.get("grievances")
    if not isinstance(codes, list) or not codes or not all(isinstance(code, str) for code in codes):
        raise RequestError('name the tickets by code, e.g. ["GR00000012"]')
    if len(codes) > MAX_TICKETS:
        raise RequestError(f"at most {MAX_TICKETS:,} tickets per request")
    codes = [code.strip().upper() for code in codes]
    if malformed := [code for code in codes if not CODE.match(code)]:
        raise RequestError(f"not a grievance code (GR and 8 digits): {', '.join(repr(c[:20]) for c in malformed[:5])}")
    return sorted(set(codes))


def comment_of(options: Options) -> str:
    return required_text(options, "comment", MAX_COMMENT,
                         "give a comment (for RESOLVED: the resolution); it is kept with the change")


def validate_change(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    target = options.get("status")
    if target not in TARGET_STATUSES:
        raise RequestError(f"status must be one of {', '.join(TARGET_STATUSES)}, not {str(target)[:40]!r}")
    comment, codes = comment_of(options), codes_of(options)
    cur.execute(
        "INSERT INTO intake.request_selection (request_id, grievance_id)"
        " SELECT %s, g.grievance_id FROM ledger.grievances g WHERE g.grievance_code = ANY(%s)",
        (request_id, codes))
    if cur.rowcount < len(codes):
        cur.execute("SELECT code FROM unnest(%s::text[]) code WHERE NOT EXISTS ("
                    " SELECT 1 FROM ledger.grievances g WHERE g.grievance_code = code) ORDER BY 1 LIMIT 5", (codes,))
        raise RequestError(f"no grievance with code {', '.join(code for (code,) in cur.fetchall())}")
    return {"status": target, "comment": comment, "grievances": codes}


def summarise_changes(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(
        f"SELECT from_status || ' → ' || to_status, count(*) FROM {proposal.table} WHERE request_id = %s AND allowed"
        f" GROUP BY 1 ORDER BY 1", (request_id,))
    changes = dict(cur.fetchall())
    cur.execute(
        f"SELECT grievance_code || ': ' || refusal FROM {proposal.table} WHERE request_id = %s AND NOT allowed"
        f" ORDER BY grievance_code LIMIT 20", (request_id,))
    refused = [line for (line,) in cur.fetchall()]
    return {"grievances_changing": sum(changes.values()), "changes": changes, "not_allowed": refused}


def commit_changes(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Append the allowed changes; refuse if any ticket moved on since the proposal."""
    request_id = proposal.key
    cur.execute(
        f"SELECT p.grievance_code FROM {proposal.table} p WHERE p.request_id = %s AND p.allowed AND"
        f" p.based_on_version <>"
        f" (SELECT max(e.version) FROM ledger.grievance_events e WHERE e.grievance_id = p.grievance_id) LIMIT 5",
        (request_id,))
    if stale := [code for (code,) in cur.fetchall()]:
        raise CommitConflict(f"grievances changed after the proposal: {', '.join(stale)}; ask again")
    cur.execute(
        f"INSERT INTO ledger.grievance_events (grievance_id, version, status, comment, commit_id)"
        f" SELECT p.grievance_id, p.version, p.to_status, r.document->>'comment', %s"
        f" FROM {proposal.table} p JOIN intake.requests r USING (request_id) WHERE p.request_id = %s AND p.allowed",
        (commit_id, request_id))
    if cur.rowcount == 0:
        raise CommitConflict("none of the named grievances may take this status")
    return cur.rowcount


WORKFLOW = Workflow(
    dag_id="grievance_status",
    intake=FormIntake(params={
        "grievances": Param([], type="array", items={"type": "string"}, minItems=1,
                            description='Ticket codes, e.g. ["GR00000012", "GR00000013"]'),
        "status": Param("OPEN", enum=list(TARGET_STATUSES), description="The new status"),
        "comment": Param("", type="string", minLength=1, maxLength=MAX_COMMENT,
                         description="Kept with the change; for RESOLVED, the resolution"),
    }, describe=lambda options: f"grievances to {options.get('status')}"),
    validate=FormCheck(check=validate_change),
    propose=Proposal(summarise=summarise_changes, shown=("from_status", "to_status", "allowed", "refusal")),
    approve=Approval(group="GrievanceCheckers"),
    commit=Commit(append=commit_changes, writes=("grievance_events",)),
    publish=Publish(asset="benefitflow://grievances"),
    tags=("grievances",),
    doc_md="""
### Change the status of grievance tickets

**Parameters** — `grievances` (ticket codes, `GR` and 8 digits), `status` (OPEN, IN_PROGRESS,
RESOLVED or CLOSED), `comment` (kept with the change; for RESOLVED it is the resolution).

Allowed: RECEIVED→OPEN, OPEN→IN_PROGRESS, IN_PROGRESS→RESOLVED, RESOLVED→CLOSED, and reopening
(RESOLVED→OPEN, CLOSED→OPEN). Tickets for which the change is not allowed are listed in the
approval request and left as they are. A member of `GrievanceCheckers` other than you approves.
""",
)
