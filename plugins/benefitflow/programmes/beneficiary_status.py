"""The `beneficiary_status` workflow: status changes by criteria, within the transition table.

Allowed changes are the rows of `ledger.beneficiary_status_transitions` (also enforced by a
trigger on the ledger). A beneficiary for whom the change is not allowed is reported to the
checker and left as it is; the others change together, with the reason, maker and checker.
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.core.parameters import MAX_REASON, reason_of
from benefitflow.programmes import id_files, plans
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FormCheck,
    FormIntake,
    Options,
    Proposal,
    Publish,
    Workflow,
    plan_parameter,
)
from benefitflow.workflows.proposal_digest import ProposalRef

TARGET_STATUSES = ("ACTIVE", "SUSPENDED", "GRADUATED")


def validate_change(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    found = plans.require_active(cur, options.get("plan"))
    target = options.get("status")
    if target not in TARGET_STATUSES:
        raise RequestError(f"status must be one of {', '.join(TARGET_STATUSES)}, not {str(target)[:40]!r}")
    reason = reason_of(options)
    criteria, file = options.get("criteria") or {}, (options.get("file") or "").strip()
    if bool(criteria) == bool(file):
        raise RequestError("choose the beneficiaries by `criteria` (a filter) or by `file` (a CSV of ids), one of "
                           'the two; for instance {"all": [{"field": "status", "op": "=", "value": "POTENTIAL"}]}')
    chosen = {"plan": found.plan.code, "status": target, "reason": reason}
    if file:
        return chosen | id_files.select_from_file(cur, request_id, found.plan, file, user)
    condition = plans.request_condition(criteria, plans.beneficiary_fields(found.plan))
    cur.execute(
        sql.SQL("INSERT INTO intake.request_selection (request_id, beneficiary_id)"
                " SELECT {request}, b.beneficiary_id FROM {rows} WHERE b.plan_code = {plan} AND {condition}").format(
            request=sql.Literal(request_id), rows=plans.beneficiary_rows(found.plan.type),
            plan=sql.Literal(found.plan.code), condition=condition),
    )
    return chosen | {"criteria": criteria, "beneficiaries_selected": cur.rowcount}


def summarise_changes(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(
        f"SELECT count(*) FILTER (WHERE allowed), count(*) FILTER (WHERE NOT allowed) FROM {proposal.table}"
        f" WHERE request_id = %s", (request_id,))
    allowed, refused = cur.fetchone()
    cur.execute(
        f"SELECT from_status || ' → ' || to_status, count(*) FROM {proposal.table} WHERE request_id = %s AND allowed"
        f" GROUP BY 1 ORDER BY 1", (request_id,))
    changes = dict(cur.fetchall())
    cur.execute(
        f"SELECT refusal, count(*) FROM {proposal.table} WHERE request_id = %s AND NOT allowed GROUP BY 1 ORDER BY 1",
        (request_id,))
    return {"beneficiaries_changing": allowed, "changes": changes, "beneficiaries_left_as_they_are": refused,
            "not_allowed": dict(cur.fetchall())}


def commit_changes(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Append a new version for every allowed change; refuse if any of them moved on since the proposal."""
    request_id = proposal.key
    cur.execute("SELECT document->>'plan' FROM intake.requests WHERE request_id = %s", (request_id,))
    # Under the plan's lock a concurrent change of the same beneficiaries is seen below (and named), not met
    # as a duplicate version; and a payment cycle's commit sees this one's suspensions.
    plans.lock_plan(cur, cur.fetchone()[0])
    cur.execute(
        f"SELECT p.beneficiary_id FROM {proposal.table} p WHERE p.request_id = %s AND p.allowed AND"
        f" p.based_on_version <>"
        f" (SELECT max(v.version) FROM ledger.beneficiary_versions v WHERE v.beneficiary_id = p.beneficiary_id)"
        f" LIMIT 5", (request_id,))
    if stale := [str(row[0]) for row in cur.fetchall()]:
        raise CommitConflict(f"beneficiaries changed after the proposal: {', '.join(stale)}; ask again")
    cur.execute(
        f"INSERT INTO ledger.beneficiary_versions (beneficiary_id, version, plan_code, individual_id, household_code,"
        f" status, attributes, reason, commit_id)"
        f" SELECT p.beneficiary_id, p.version, p.plan_code, p.individual_id, p.household_code, p.to_status,"
        f" p.attributes, r.document->>'reason', %s"
        f" FROM {proposal.table} p JOIN intake.requests r USING (request_id) WHERE p.request_id = %s AND p.allowed",
        (commit_id, request_id),
    )
    return cur.rowcount


WORKFLOW = Workflow(
    dag_id="beneficiary_status",
    intake=FormIntake(params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "status": Param("ACTIVE", enum=list(TARGET_STATUSES), description="The new status"),
        "reason": Param("", type="string", minLength=1, maxLength=MAX_REASON,
                        description="Why (kept with each change)"),
        "criteria": Param({}, type="object", description='Which beneficiaries, e.g. {"all": [{"field": "status", '
                                                          '"op": "=", "value": "POTENTIAL"}, {"field": "region", '
                                                          '"op": "=", "value": "North"}]}'),
        "file": Param("", type="string", maxLength=500,
                      description="Or: a CSV in the inbox with one column beneficiary_id, individual_id (INDIVIDUAL "
                                  "plans) or household_code (GROUP plans)"),
    }, describe=lambda options: f"{options.get('plan')}: to {options.get('status')}", plan_of=plan_parameter),
    validate=FormCheck(check=validate_change),
    propose=Proposal(summarise=summarise_changes, shown=("from_status", "to_status", "allowed", "refusal")),
    approve=Approval(group="ProgrammeCheckers"),
    commit=Commit(append=commit_changes, writes=("beneficiary_versions",)),
    publish=Publish(asset="benefitflow://programmes/beneficiaries"),
    tags=("programmes",),
    doc_md="""
### Change the status of a plan's beneficiaries

**Parameters** — `plan` (code), `status` (the new one: ACTIVE, SUSPENDED or GRADUATED),
`reason` (kept with every change), and which beneficiaries: `criteria` (the filter language over
registry fields, `status`, `beneficiary_id` and the plan's own variables) or `file` (a CSV in
the inbox with one column `beneficiary_id`, `individual_id` or — GROUP plans — `household_code`;
an id naming nobody in the plan refuses the file, every such row in the error report).

Allowed: POTENTIAL→ACTIVE, ACTIVE→SUSPENDED, SUSPENDED→ACTIVE, ACTIVE or SUSPENDED→GRADUATED,
POTENTIAL→GRADUATED ("not taken up"). Beneficiaries for whom the change is not allowed are
counted in the approval request and left as they are. A member of `ProgrammeCheckers` other
than you approves.
""",
)
