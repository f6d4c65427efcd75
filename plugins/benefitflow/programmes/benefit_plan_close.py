"""The `benefit_plan_close` workflow: a plan closes; its beneficiaries not yet graduated graduate."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from airflow.sdk import Param

from benefitflow.core.errors import CommitConflict
from benefitflow.core.parameters import reason_of
from benefitflow.programmes import beneficiary_status, plans
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


def validate_closing(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    found = plans.require_active(cur, options.get("plan"))
    reason = reason_of(options)
    cur.execute(
        "INSERT INTO intake.request_selection (request_id, beneficiary_id)"
        " SELECT %s, beneficiary_id FROM programmes.beneficiaries WHERE plan_code = %s AND status <> 'GRADUATED'",
        (request_id, found.plan.code),
    )
    return {"plan": found.plan.code, "based_on_version": found.version, "status": "GRADUATED", "reason": reason,
            "beneficiaries_selected": cur.rowcount}


def commit_closing(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    plans.lock_plans(cur)
    cur.execute("SELECT document->>'plan', (document->>'based_on_version')::int FROM intake.requests"
                " WHERE request_id = %s", (proposal.key,))
    code, based_on = cur.fetchone()
    plans.lock_plan(cur, code)
    plans.refuse_if_moved_on(cur, code, based_on)
    cur.execute(
        "INSERT INTO ledger.plan_versions (plan_code, version, commit_id, name, plan_type, valid_from, valid_to,"
        " max_beneficiaries, currency, status, document)"
        " SELECT plan_code, version + 1, %s, name, plan_type, valid_from, valid_to, max_beneficiaries, currency,"
        " 'CLOSED', document FROM ledger.plan_versions WHERE plan_code = %s AND version = %s",
        (commit_id, code, based_on),
    )
    graduated = beneficiary_status.commit_changes(cur, commit_id, proposal)
    # Enrolled after the proposal selected whom to graduate: they would stay in a closed plan.
    cur.execute("SELECT count(*) FROM (SELECT DISTINCT ON (beneficiary_id) status FROM ledger.beneficiary_versions"
                " WHERE plan_code = %s ORDER BY beneficiary_id, version DESC) latest WHERE status <> 'GRADUATED'",
                (code,))
    if left := cur.fetchone()[0]:
        raise CommitConflict(f"plan {code}: {left} beneficiaries were enrolled since the proposal and would not be "
                             f"graduated; ask again")
    return graduated


WORKFLOW = Workflow(
    dag_id="benefit_plan_close",
    intake=FormIntake(params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "reason": Param("", type="string", minLength=1, maxLength=500, description="Why the plan closes"),
    }, describe=lambda options: f"close plan {options.get('plan')}", plan_of=plan_parameter),
    validate=FormCheck(check=validate_closing),
    propose=Proposal(summarise=beneficiary_status.summarise_changes,
                     shown=("from_status", "to_status", "allowed", "refusal")),
    approve=Approval(group="ProgrammeCheckers"),
    commit=Commit(append=commit_closing, writes=("beneficiary_versions", "plan_versions")),  # closing graduates all
    publish=Publish(asset=plans.PLAN_ASSET),
    tags=("programmes",),
    doc_md="""
### Close a benefit plan

Every beneficiary of the plan not yet graduated becomes GRADUATED (POTENTIAL ones as "not
taken up"), with your `reason`, and the plan's new version is CLOSED. A member of
`ProgrammeCheckers` other than you approves.
""",
)
