"""The `enrolment` workflow: individuals (INDIVIDUAL plans) or households (GROUP plans) by criteria."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core.errors import RequestError
from benefitflow.core.parameters import money
from benefitflow.programmes import plans
from benefitflow.programmes.beneficiary_versions import append_beneficiaries
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


def validate_enrolment(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    found = plans.require_active(cur, options.get("plan"))
    plan = found.plan
    target = options.get("target_status")
    if target not in plans.ENROLMENT_STATUSES:
        raise RequestError(f"target_status must be POTENTIAL or ACTIVE, not {str(target)[:40]!r}")
    if not plan.is_current_on(date.today()):
        raise RequestError(f"plan {plan.code} is not in force today (valid {plan.document['valid_from']} to "
                           f"{plan.document.get('valid_to') or 'open'})")
    criteria = options.get("criteria") or plan.default_criteria(target)
    if criteria is None:
        raise RequestError(f"no criteria given and plan {plan.code} has no default criteria for {target}; "
                           'give criteria ({"all": []} selects everyone)')
    condition = plans.request_condition(criteria, plans.enrolment_fields())
    who = sql.SQL("h.household_code" if plan.type == "GROUP" else "i.individual_id")
    member_counts, counted, top_ups = plans.entitlement_facts(plan, plans.candidate_fields(plan))
    cur.execute(
        sql.SQL("{member_counts} INSERT INTO intake.request_selection (request_id, {column}, counted_members, top_ups)"
                " SELECT {request}, {who}, {counted}, {top_ups} FROM {rows}"
                " LEFT JOIN member_counts ON member_counts.household_code = h.household_code"
                " WHERE {condition}").format(
            member_counts=member_counts, column=sql.Identifier("household_code" if plan.type == "GROUP" else
                                                               "individual_id"),
            request=sql.Literal(request_id), who=who, counted=counted, top_ups=top_ups,
            rows=plans.registry_rows(plan.type), condition=condition),
    )
    return {"plan": plan.code, "plan_type": plan.type, "target_status": target, "criteria": criteria,
            "max_beneficiaries": plan.max_beneficiaries, "matching": cur.rowcount}


def summarise_enrolment(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(
        f"SELECT count(*) FILTER (WHERE already_enrolled), count(*) FILTER (WHERE to_enrol),"
        f" count(*) FILTER (WHERE over_capacity) FROM {proposal.table} WHERE request_id = %s", (request_id,))
    already, added, over = cur.fetchone()
    cur.execute(f"SELECT coalesce(sum(p.projected_amount) FILTER (WHERE p.to_enrol), 0), min(v.currency)"
                f" FROM {proposal.table} p JOIN programmes.benefit_plans v USING (plan_code) WHERE p.request_id = %s",
                (request_id,))
    cost, currency = cur.fetchone()
    return {"already_enrolled": already, "would_be_added": added, "over_max_beneficiaries": over,
            "projected_cost_per_cycle": money(cost, currency)}


def commit_enrolment(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Enrol the approved candidates; refuse if capacity or enrolments moved on since the proposal."""
    request_id = proposal.key
    cur.execute(f"SELECT r.document->>'plan', (SELECT count(*) FROM {proposal.table} p WHERE p.request_id ="
                f" r.request_id"
                f" AND p.to_enrol) FROM intake.requests r WHERE r.request_id = %s", (request_id,))
    code, enrolling = cur.fetchone()
    return append_beneficiaries(
        cur, code, enrolling,
        f"INSERT INTO ledger.beneficiary_versions (beneficiary_id, version, plan_code, individual_id,"
        f" household_code, status, reason, commit_id)"
        f" SELECT beneficiary_id, 1, plan_code, individual_id, household_code, status, 'enrolment', %s"
        f" FROM {proposal.table} WHERE request_id = %s AND to_enrol",
        (commit_id, request_id),
    )


WORKFLOW = Workflow(
    dag_id="enrolment",
    intake=FormIntake(params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "target_status": Param("POTENTIAL", enum=list(plans.ENROLMENT_STATUSES),
                               description="Status the new beneficiaries get"),
        "criteria": Param({}, type="object",
                          description="Who is eligible (filter language); empty: the plan's default criteria for "
                                      "the target status"),
    }, describe=lambda options: f"enrol into {options.get('plan')} as {options.get('target_status')}",
       plan_of=plan_parameter),
    validate=FormCheck(check=validate_enrolment),
    propose=Proposal(summarise=summarise_enrolment,
                     shown=("status", "already_enrolled", "over_capacity", "to_enrol", "projected_amount")),
    approve=Approval(group="ProgrammeCheckers"),
    commit=Commit(append=commit_enrolment, writes=("beneficiary_versions",)),
    publish=Publish(asset="benefitflow://programmes/beneficiaries"),
    tags=("programmes",),
    doc_md="""
### Enrol eligible people (or households) into a plan

**Parameters** — `plan` (code), `target_status` (POTENTIAL or ACTIVE), `criteria` (the filter
language over registry fields; empty: the plan's `default_criteria` for that status).

An INDIVIDUAL plan enrols individuals; a GROUP plan enrols households, and its criteria are
evaluated on the household's head (with `household_size` for the household). Criteria naming
an unknown field, an unknown operator or a value of the wrong type fail the run before any
checker is asked. The checker sees how many match, how many are already enrolled, how many
would be added, how many exceed `max_beneficiaries` (those are not enrolled: the first
candidates by id fill the places left), and the projected cost per payment cycle under the
plan's entitlement rule. A member of `ProgrammeCheckers` other than you approves.
""",
)
