"""The `duplicates_review` workflow: duplicate pairs decided by a maker and a checker of RegistryCheckers.

CONFIRM merges a pair: one record survives (the older, or the one a file names), the other is retired with a pointer
to it; the retired record's household place goes to a survivor without one, its enrolments move to the survivor
(or, in a plan the survivor is in already, are graduated as duplicates), its bills pay the survivor (where the two
were billed in one cycle, one bill is cancelled) and its grievance tickets are the survivor's (the state follows the
pointer). DISMISS says the two are different people: the pair is not proposed again until one of them changes.
UNMERGE undoes a merge: the retired record is restored, the enrolments its merge moved go back (and with them the
bills and tickets), those it graduated are restored and the bills it cancelled are reinstated. Everything through
the ledger (duplicates_review.sql).
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core import filters
from benefitflow.core.columns import as_uuid
from benefitflow.core.errors import CommitConflict, RequestError, WorkflowError
from benefitflow.core.parameters import MAX_REASON, reason_of
from benefitflow.programmes import plans
from benefitflow.programmes.id_files import refuse_file
from benefitflow.registry.individuals_import import lock_registry, refuse_broken_households
from benefitflow.workflows import inputs, row_checks
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
from benefitflow.workflows.inputs import FileSpec
from benefitflow.workflows.intake import take_in_file
from benefitflow.workflows.proposal_digest import ProposalRef

# The decision a maker asks for -> what the ledger records, and the status a pair must have for it.
DECISIONS = {"CONFIRM": ("CONFIRMED", "OPEN"), "DISMISS": ("DISMISSED", "OPEN"), "UNMERGE": ("UNMERGED", "CONFIRMED")}
SURVIVORS = ("older", "newer")
MAX_LISTED = 10_000
FILE_SPEC = FileSpec(kind="duplicate_candidates", required_columns=("candidate_id",), optional_columns=("survivor_id",))
STATEMENTS = row_checks.beside(__file__)
CANDIDATE = "c"
CANDIDATE_FIELDS = {
    "candidate_id": filters.core_field("candidate_id", "integer", table_alias=CANDIDATE),
    "score": filters.core_field("score", "number", table_alias=CANDIDATE),
    "at_review_threshold": filters.core_field("at_review_threshold", "boolean", table_alias=CANDIDATE),
    "found_by_scope": filters.Field("found_by_scope", "string", sql.Identifier(CANDIDATE, "found_by_scope"),
                                    ("changed", "registry")),
}


def validate_review(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    asked = options.get("decision")
    if asked not in DECISIONS:
        raise RequestError(f"decision must be one of {', '.join(DECISIONS)}, not {str(asked)[:20]!r}")
    decision, status = DECISIONS[str(asked)]
    survivor = options.get("survivor") or "older"
    if survivor not in SURVIVORS:
        raise RequestError(f"survivor must be one of {', '.join(SURVIVORS)}, not {str(survivor)[:20]!r}")
    chosen = {"decision": decision, "survivor": survivor, "reason": reason_of(options)}
    candidates, criteria = options.get("candidates") or [], options.get("criteria") or {}
    file = str(options.get("file") or "").strip()
    if sum(map(bool, (candidates, criteria, file))) != 1:
        raise RequestError("choose the pairs by `candidates` (a list of candidate ids), `criteria` (a filter, e.g. "
                           '{"field": "score", "op": ">=", "value": 0.95}) or `file` (a CSV with a column '
                           "candidate_id, and survivor_id to name who survives a merge): one of the three")
    if file:
        return chosen | _select_from_file(cur, request_id, file, user, status)
    if candidates:
        return chosen | _select_listed(cur, request_id, candidates, status)
    condition = plans.request_condition(criteria, CANDIDATE_FIELDS)
    cur.execute(sql.SQL(
        "INSERT INTO intake.request_selection (request_id, candidate_id)"
        " SELECT {request}, c.candidate_id FROM registry.duplicate_candidates c"
        " WHERE c.status = {status} AND {condition}"
    ).format(request=sql.Literal(request_id), status=sql.Literal(status), condition=condition))
    if not cur.rowcount:
        raise RequestError(f"criteria: no {status} pair matches {criteria}")
    return chosen | {"criteria": criteria, "pairs_selected": cur.rowcount}


def _select_listed(cur: psycopg2.extensions.cursor, request_id: int, candidates: Any, status: str) -> dict[str, Any]:
    if not isinstance(candidates, list) or len(candidates) > MAX_LISTED or not all(
            isinstance(number, int) and not isinstance(number, bool) for number in candidates):
        raise RequestError(f"candidates: a list of at most {MAX_LISTED:,} candidate ids (whole numbers)")
    cur.execute(
        "SELECT number, c.status FROM unnest(%s::bigint[]) AS number"
        " LEFT JOIN registry.duplicate_candidates c ON c.candidate_id = number"
        " WHERE c.status IS DISTINCT FROM %s ORDER BY number LIMIT 10", (candidates, status))
    if wrong := cur.fetchall():
        described = ", ".join(f"{number} ({'no such pair' if found is None else found})" for number, found in wrong)
        raise RequestError(f"candidates: not {status} pairs: {described}")
    cur.execute("INSERT INTO intake.request_selection (request_id, candidate_id)"
                " SELECT DISTINCT %s, number FROM unnest(%s::bigint[]) AS number", (request_id, candidates))
    return {"candidates": sorted(set(candidates))[:20], "pairs_selected": cur.rowcount}


def _select_from_file(cur: psycopg2.extensions.cursor, request_id: int, file: str, user: str,
                      status: str) -> dict[str, Any]:
    """Record and stage the file, check every row at once (row errors, the whole file refused if any), select."""
    cur.execute("SELECT dag_id, run_id, kind FROM intake.requests WHERE request_id = %s", (request_id,))
    dag_id, run_id, operation = cur.fetchone()
    try:
        upload = take_in_file(spec=FILE_SPEC, file=file, user=user, dag_id=dag_id, run_id=run_id, operation=operation)
    except WorkflowError as exc:
        raise RequestError(str(exc)) from exc
    upload_id, name, staged = int(upload["upload_id"]), upload["file_name"], upload["staged_table"]
    named = "survivor_id" in upload["header"]
    parts = {"upload": sql.Literal(upload_id), "staged": sql.Identifier(staged), "status": sql.Literal(status),
             "survivor": as_uuid(sql.SQL("btrim(s.survivor_id)")) if named else sql.SQL("NULL::uuid"),
             "survivor_text": sql.SQL("s.survivor_id") if named else sql.SQL("NULL::text")}
    errors = sql.SQL(STATEMENTS["file_errors"]).format(**parts)
    cur.execute(sql.SQL("SELECT count(*) FROM ({}) errors").format(errors))
    if cur.fetchone()[0]:
        refuse_file(upload_id, name, user, f"file {name}: rows that name no {status} pair, or a survivor not of it",
                    errors)
    cur.execute(sql.SQL(STATEMENTS["file_selection"]).format(request=sql.Literal(request_id), **parts))
    selected = cur.rowcount
    inputs.drop_staged(cur, staged)
    inputs.set_status(cur, upload_id, "WAITING_FOR_APPROVAL", valid_row_count=upload["row_count"], invalid_row_count=0)
    return {"file": name, "upload_id": upload_id, "rows_in_file": upload["row_count"], "pairs_selected": selected}


def summarise_review(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    cur.execute(
        f"SELECT count(*) FILTER (WHERE allowed), count(*) FILTER (WHERE NOT allowed),"
        f" count(*) FILTER (WHERE allowed AND takes_household), min(score), max(score)"
        f" FROM {proposal.table} WHERE request_id = %s", (proposal.key,))
    allowed, refused, households, lowest, highest = cur.fetchone()
    cur.execute(f"SELECT coalesce(sum(bills_to_cancel), 0), coalesce(sum(amount_to_cancel), 0),"
                f" coalesce(sum(paid_twice), 0), coalesce(sum(bills_to_reinstate), 0),"
                f" coalesce(sum(bills_paid_to_survivor), 0), coalesce(sum(amount_paid_to_survivor), 0)"
                f" FROM {proposal.table} WHERE request_id = %s AND allowed", (proposal.key,))
    bills, amount, paid_twice, reinstated, paid_to_survivor, amount_paid_to_survivor = cur.fetchone()
    cur.execute(f"SELECT refusal, count(*) FROM {proposal.table} WHERE request_id = %s AND NOT allowed"
                f" GROUP BY 1 ORDER BY 1", (proposal.key,))
    return {"pairs_to_decide": allowed, "pairs_left_as_they_are": refused, "not_allowed": dict(cur.fetchall()),
            "households_taken_over_by_survivors": households, "bills_cancelled_as_billed_twice": bills,
            "amount_cancelled": f"{amount:.2f}", "cycles_paid_twice_already": paid_twice,
            "cancelled_bills_reinstated": reinstated,
            "bills_paid_to_the_survivor_while_merged": paid_to_survivor,
            "amount_paid_to_the_survivor_while_merged": f"{amount_paid_to_survivor:.2f}",
            "smallest_score": lowest, "largest_score": highest}


def commit_review(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Append the reviews and, for merges and unmerges, the records' and enrolments' new versions, the bills a merge
    cancels (the person billed twice in a cycle) and those an unmerge reinstates; refuse if a pair or its bills moved
    on since the proposal, or if a household would be left without its HEAD or primary recipient."""
    lock_registry(cur)
    parameters = {"request_id": proposal.key, "commit_id": commit_id}
    table = sql.SQL(proposal.table)
    _lock_plans_of_the_pairs(cur, table, parameters)
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.payroll'))")  # payrolls read bill statuses
    cur.execute(sql.SQL(STATEMENTS["stale"]).format(proposal=table), parameters)
    if stale := [str(row[0]) for row in cur.fetchall()]:
        raise CommitConflict(f"pairs changed after the proposal (a record or a review): {', '.join(stale)}; ask again")
    cur.execute(sql.SQL(STATEMENTS["bills_paid_twice"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["bills_moved_on"]).format(proposal=table), parameters)
    if moved_on := [str(row[0]) for row in cur.fetchall()]:
        raise CommitConflict(f"the bills to cancel changed after the proposal (billed, paid or put in a payroll) in "
                             f"pairs {', '.join(moved_on)}; ask again")
    cur.execute(sql.SQL(STATEMENTS["cancelled_bills"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["latest_versions"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["retired_versions"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["survivor_versions"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["review_enrolments"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["beneficiaries"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["reviews"]).format(proposal=table), parameters)
    reviewed = cur.rowcount
    cur.execute(sql.SQL(STATEMENTS["reinstated_bills"]).format(proposal=table), parameters)
    cur.execute(sql.SQL(STATEMENTS["restored_enrolments"]).format(proposal=table), parameters)
    refuse_broken_households(cur, commit_id)
    return reviewed


def _lock_plans_of_the_pairs(cur: psycopg2.extensions.cursor, table: sql.Composable, parameters: dict) -> None:
    """A merge moves, graduates and cancels what the plans of both records hold: no commit of those plans (an
    enrolment, a payment cycle) runs beside it. Each plan's lock, in one order (after the registry's)."""
    cur.execute(sql.SQL(
        "SELECT DISTINCT lower(v.plan_code) FROM ledger.beneficiary_versions v WHERE v.individual_id IN ("
        " SELECT unnest(ARRAY[p.individual_a, p.individual_b]) FROM {proposal} p"
        " WHERE p.request_id = %(request_id)s AND p.allowed AND p.decision <> 'DISMISSED') ORDER BY 1"
    ).format(proposal=table), parameters)
    for (code,) in cur.fetchall():
        plans.lock_plan(cur, code)


WORKFLOW = Workflow(
    dag_id="duplicates_review",
    intake=FormIntake(params={
        "decision": Param("DISMISS", enum=list(DECISIONS),
                          description="CONFIRM: one person (merge the two records); DISMISS: two people; "
                                      "UNMERGE: undo a merge"),
        "reason": Param("", type="string", minLength=1, maxLength=MAX_REASON, description="Why (kept with each pair)"),
        "candidates": Param([], type="array", items={"type": "integer"}, maxItems=MAX_LISTED,
                            description="The pairs, by candidate id"),
        "criteria": Param({}, type="object",
                          description='Or a filter over the pairs, e.g. {"field": "score", "op": ">=", "value": 0.95} '
                                      "(fields: candidate_id, score, at_review_threshold, found_by_scope)"),
        "file": Param("", type="string", maxLength=500,
                      description="Or a CSV in the inbox: candidate_id, and survivor_id to name who survives a merge"),
        "survivor": Param("older", enum=list(SURVIVORS),
                          description="Who survives a merge unless the file names it: the record registered first "
                                      "(older) or last (newer)"),
    }, describe=lambda options: f"duplicates: {str(options.get('decision') or '').lower()}"),
    validate=FormCheck(check=validate_review),
    propose=Proposal(summarise=summarise_review,
                     shown=("candidate_id", "score", "decision", "allowed", "refusal", "takes_household")),
    approve=Approval(group="RegistryCheckers"),
    commit=Commit(append=commit_review,
                  writes=("duplicate_reviews", "individual_versions", "beneficiary_versions", "bill_events")),
    publish=Publish(asset="benefitflow://registry/individuals"),
    tags=("registry",),
    doc_md="""
### Decide duplicate pairs: merge, dismiss, unmerge

**Parameters** — `decision` (CONFIRM, DISMISS or UNMERGE), `reason` (kept with every pair), and
which pairs: `candidates` (a list of candidate ids), `criteria` (a filter over the open pairs —
merged ones for UNMERGE — on `candidate_id`, `score`, `at_review_threshold`, `found_by_scope`), or
`file` (a CSV in the inbox with `candidate_id` and, optionally, `survivor_id`: which of the two
survives a merge). `survivor`: without a file's choice, the record registered first survives
(`older`) or the last (`newer`).

**What a merge does** — the retired record is merged into the survivor (it leaves the registry's
current state and its household; the ledger keeps every version); a survivor without a household
takes the retired record's place in it; the retired record's enrolments move to the survivor, or,
in a plan the survivor is in already, are graduated with the reason "duplicate". Its bills pay the
survivor from then on; where the two were billed in the same cycle, one unpaid bill is cancelled
(the retired record's, unless only the survivor's is unpaid), so nobody is paid twice; two bills of
a cycle out for payment (or one out, one paid) refuse the merge until it is reconciled. A retired HEAD or
primary recipient of a household that keeps other members is refused: name another first.
**Dismiss** keeps the pair as two people: it is not proposed again unless one record changes.
**Unmerge** restores the retired record as it was, moves back the enrolments its merge moved, gives
back those it graduated as duplicates (their status before) and reinstates the bills its merge
cancelled (each due, held or failed again, as it was).

**Approval** — a member of `RegistryCheckers` other than you. The request shows, per pair, the
score, the decision and whether it is allowed (no names); the full proposal (maker, checkers and
operators only) has both records side by side: names, date of birth, national id, phone, place,
household, plans, last bills and grievances.
""",
)
