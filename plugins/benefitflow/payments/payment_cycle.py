"""The `payment_cycle` workflow: one bill per ACTIVE beneficiary of a plan for a period.

validate selects the plan's ACTIVE beneficiaries with what the entitlement rule needs to know
of each (members counted, top-ups matched: the criteria compiler, set-based); dbt's
`payment_cycle_proposal` turns them into amounts with the plan's rule (`entitlement_amount`),
leaving out those already billed in the cycle; on approval the bills are frozen in
`ledger.bills` with the plan version they came from. A cycle can be run again: it bills only
those not yet billed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.core.parameters import code_of, date_of, money
from benefitflow.payments.payroll import finish_payroll_files
from benefitflow.programmes import plans
from benefitflow.registry.individuals_import import lock_registry
from benefitflow.workflows import publish
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


def validate_cycle(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    found = plans.require_active(cur, options.get("plan"))
    plan, cycle = found.plan, code_of(options, "cycle")
    start, end = date_of(options, "period_start"), date_of(options, "period_end")
    if end < start:
        raise RequestError(f"period_end {end} is before period_start {start}")
    if not plan.document.get("entitlement"):
        raise RequestError(f"plan {plan.code} has no entitlement rule: define one (a new plan version) first")
    if not plan.is_current_on(start):
        raise RequestError(f"the period starts outside plan {plan.code}'s validity ({plan.document['valid_from']} to "
                           f"{plan.document.get('valid_to') or 'open'})")
    _refuse_other_periods(cur, plan.code, cycle, start, end)
    _select_active_beneficiaries(cur, request_id, plan)
    return {"plan": plan.code, "plan_version": found.version, "cycle": cycle, "period_start": start.isoformat(),
            "period_end": end.isoformat(), "currency": plan.document["currency"], "active_beneficiaries": cur.rowcount}


def _refuse_other_periods(cur: psycopg2.extensions.cursor, plan: str, cycle: str, start: date, end: date) -> None:
    """A re-run keeps the cycle's period; another cycle of the plan may not overlap it (it would pay twice)."""
    cur.execute("SELECT cycle_code, period_start, period_end FROM ledger.payment_cycles WHERE plan_code = %s"
                " AND (cycle_code = %s OR daterange(period_start, period_end, '[]') && daterange(%s, %s, '[]'))"
                " ORDER BY cycle_code = %s DESC LIMIT 1", (plan, cycle, start, end, cycle))
    found = cur.fetchone()
    if found is None:
        return
    code, their_start, their_end = found
    if code == cycle and (their_start, their_end) != (start, end):
        raise RequestError(f"cycle {cycle} of plan {plan} covers {their_start} to {their_end}; a re-run keeps "
                           f"that period")
    if code != cycle:
        raise RequestError(f"the period overlaps cycle {code} of plan {plan} ({their_start} to {their_end})")


def _select_active_beneficiaries(cur: psycopg2.extensions.cursor, request_id: int, plan: plans.Plan) -> None:
    member_counts, counted, top_ups = plans.entitlement_facts(plan, plans.beneficiary_fields(plan))
    cur.execute(sql.SQL(
        "{member_counts} INSERT INTO intake.request_selection"
        " (request_id, beneficiary_id, individual_id, household_code, counted_members, top_ups)"
        " SELECT {request}, b.beneficiary_id, b.individual_id, b.household_code, {counted}, {top_ups} FROM {rows}"
        " LEFT JOIN member_counts ON member_counts.household_code = h.household_code"
        " WHERE b.plan_code = {plan} AND b.status = 'ACTIVE'"
    ).format(member_counts=member_counts, request=sql.Literal(request_id), counted=counted, top_ups=top_ups,
             rows=plans.beneficiary_rows(plan.type), plan=sql.Literal(plan.code)))


def summarise_cycle(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(
        f"SELECT count(*), coalesce(sum(amount), 0), min(amount),"
        f" percentile_disc(0.5) WITHIN GROUP (ORDER BY amount), max(amount),"
        f" count(*) FILTER (WHERE over_transaction_limit),"
        f" coalesce(sum(amount) FILTER (WHERE held), 0),"
        f" count(*) FILTER (WHERE payee_in_open_duplicate_pair),"
        f" coalesce(sum(amount) FILTER (WHERE payee_in_open_duplicate_pair), 0),"
        f" count(*) FILTER (WHERE payee_in_open_duplicate_pair AND held)"
        f" FROM {proposal.table} WHERE request_id = %s AND NOT already_billed", (request_id,))
    bills, total, low, median, high, held, held_total, in_pairs, in_pairs_total, in_pairs_held = cur.fetchone()
    cur.execute("SELECT document->>'plan', (document->>'period_start')::date, document->>'currency'"
                " FROM intake.requests WHERE request_id = %s", (request_id,))
    plan, start, currency = cur.fetchone()
    cur.execute(f"SELECT count(*) FROM {proposal.table} WHERE request_id = %s AND already_billed", (request_id,))
    already = cur.fetchone()[0]
    previous = _previous_cycle(cur, plan, start)
    return {
        "bills": bills, "total": money(total, currency), "min_amount": money(low, currency),
        "median_amount": money(median, currency), "max_amount": money(high, currency),
        "held_over_transaction_limit": held, "held_total": money(held_total, currency),
        "likely_duplicate_payees_billed": in_pairs, "likely_duplicate_payees_total": money(in_pairs_total, currency),
        "likely_duplicate_payees_held": in_pairs_held,
        "already_billed_in_this_cycle": already,
        "previous_cycle": previous[0] if previous else None,
        "difference_from_previous_cycle": money(total - previous[1], currency) if previous else None,
    }


def _previous_cycle(cur: psycopg2.extensions.cursor, plan: str | None, start: date | None) -> tuple[str, Any] | None:
    cur.execute("SELECT c.cycle_code, (SELECT coalesce(sum(amount), 0) FROM ledger.bills b"
                " WHERE b.cycle_code = c.cycle_code AND b.plan_code = c.plan_code)"
                " FROM ledger.payment_cycles c WHERE c.plan_code = %s AND c.period_start < %s"
                " ORDER BY c.period_start DESC LIMIT 1", (plan, start))
    return cur.fetchone()


def commit_cycle(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Freeze the bills; refuse if, since the proposal, the plan was closed or changed, a beneficiary is no
    longer ACTIVE, or another run of the cycle billed any of them."""
    request_id = proposal.key
    cur.execute("SELECT document->>'plan', document->>'cycle', (document->>'plan_version')::int FROM intake.requests"
                " WHERE request_id = %s", (request_id,))
    plan, cycle, plan_version = cur.fetchone()
    _lock_the_payees(cur, plan)
    _refuse_plan_moved_on(cur, plan, plan_version)
    _refuse_no_longer_active(cur, proposal)
    cur.execute(
        f"SELECT count(*) FROM {proposal.table} p JOIN ledger.bills b USING (cycle_code, plan_code, beneficiary_id)"
        f" WHERE p.request_id = %s AND NOT p.already_billed", (request_id,))
    if billed := cur.fetchone()[0]:
        raise CommitConflict(f"{billed} of these beneficiaries were billed in cycle {cycle} by another run since the "
                             f"proposal; run the cycle again to bill the others")
    cur.execute(
        f"INSERT INTO ledger.payment_cycles (cycle_code, plan_code, period_start, period_end, commit_id)"
        f" SELECT DISTINCT cycle_code, plan_code, period_start, period_end, %s FROM {proposal.table} WHERE"
        f" request_id = %s"
        f" ON CONFLICT (cycle_code, plan_code) DO NOTHING", (commit_id, request_id))
    cur.execute(
        f"INSERT INTO ledger.bills (bill_id, cycle_code, plan_code, plan_version, beneficiary_id, individual_id,"
        f" household_code, amount, currency, counted_members, top_ups, held, commit_id)"
        f" SELECT bill_id, cycle_code, plan_code, plan_version, beneficiary_id, individual_id, household_code,"
        f" amount, currency, counted_members, top_ups, held, %s FROM {proposal.table}"
        f" WHERE request_id = %s AND NOT already_billed", (commit_id, request_id))
    billed = cur.rowcount
    _refuse_paying_anyone_twice(cur, commit_id, plan, cycle)
    return billed


def _lock_the_payees(cur: psycopg2.extensions.cursor, plan: str) -> None:
    """The plan's lock: status changes, plan versions, merges of its people and other cycles of the plan commit
    before or after this. A household's bill pays whoever is its primary recipient (else its head): for a household
    plan, the registry's lock too (taken first, the locks' order), so no upload or merge changes a household while
    the bills are checked against whom they pay. (A plan's type never changes: read before the lock.)"""
    found = plans.current(cur, plan)
    if found is not None and found.plan.type == "GROUP":
        lock_registry(cur)
    plans.lock_plan(cur, plan)


def _refuse_paying_anyone_twice(cur: psycopg2.extensions.cursor, commit_id: int, plan: str, cycle: str) -> None:
    """No person is paid twice in the cycle: an earlier run's bill may pay, now, someone this run bills (a merge of
    duplicate records since the proposal made that bill the survivor's, a payroll paid it to the survivor while two
    records, unmerged since, were merged, or its payroll paid a person who has moved to a household billed now).
    Checked on the bills as appended, from the ledger (the proposal read the published state): whom each new bill
    pays (ledger.bill_payees) against whom the earlier bills paid or pay (ledger.bill_recipients). Only the earlier
    bills that can pay one of them are read, by index: those enrolling one of them or a record merged into one of
    them, those a merge moved to one of them, those a payroll paid to one of them. Not on a first run of the cycle
    (its cycle row is its own), nor for people billed as themselves while no records were ever merged (each bill
    then pays whom it was billed to, and a plan enrols a person once). The bills just appended are analyzed first:
    the planner must know them to join them."""
    cur.execute("SELECT c.commit_id <> %s AND (EXISTS (SELECT FROM ledger.duplicate_reviews r"
                "                                    WHERE r.decision = 'CONFIRMED')"
                "  OR (SELECT b.household_code IS NOT NULL FROM ledger.bills b WHERE b.commit_id = %s LIMIT 1))"
                " FROM ledger.payment_cycles c WHERE c.cycle_code = %s AND c.plan_code = %s",
                (commit_id, commit_id, cycle, plan))
    if not cur.fetchone()[0]:
        return
    publish.refresh_statistics(cur)
    cur.execute(_PAID_BY_AN_EARLIER_BILL, {"commit_id": commit_id, "cycle": cycle, "plan": plan})
    twice, first = cur.fetchone()
    if twice:
        raise CommitConflict(f"{twice} of the people to bill are paid by another bill of cycle {cycle} already "
                             f"(records merged as duplicates, or people moved to another household, since the "
                             f"proposal): individual {', '.join(first)}{', ...' if twice > len(first) else ''}; "
                             f"run the cycle again to bill the others")


_PAID_BY_AN_EARLIER_BILL = """
WITH new AS MATERIALIZED (
    SELECT bill_id, payee_id FROM ledger.bill_payees WHERE commit_id = %(commit_id)s AND payee_id IS NOT NULL
),
people AS MATERIALIZED (
    SELECT payee_id AS individual_id FROM new
    UNION
    SELECT merged.individual_id FROM ledger.merged_records() AS merged
    WHERE merged.survivor_id IN (SELECT payee_id FROM new)
),
earlier AS MATERIALIZED (
    SELECT b.bill_id FROM ledger.beneficiary_versions v
    JOIN ledger.bills b
      ON b.cycle_code = %(cycle)s AND b.plan_code = v.plan_code AND b.beneficiary_id = v.beneficiary_id
    WHERE v.plan_code = %(plan)s AND v.version = 1 AND v.individual_id IN (SELECT individual_id FROM people)
      AND b.commit_id <> %(commit_id)s
    UNION
    SELECT b.bill_id FROM ledger.moved_enrolments() AS moved
    JOIN ledger.bills b
      ON b.cycle_code = %(cycle)s AND b.plan_code = %(plan)s AND b.beneficiary_id = moved.beneficiary_id
    WHERE moved.individual_id IN (SELECT individual_id FROM people) AND b.commit_id <> %(commit_id)s
    UNION
    SELECT b.bill_id FROM ledger.payroll_bills pb JOIN ledger.bills b ON b.bill_id = pb.bill_id
    WHERE b.cycle_code = %(cycle)s AND b.plan_code = %(plan)s AND b.commit_id <> %(commit_id)s
      AND pb.recipient_id IN (SELECT individual_id FROM people)
)
SELECT count(DISTINCT new.payee_id), (array_agg(DISTINCT new.payee_id::text))[1:5]
FROM earlier
CROSS JOIN LATERAL (
    SELECT r.recipient_id FROM ledger.bill_recipients r WHERE r.bill_id = earlier.bill_id AND NOT r.cancelled
) AS paid
JOIN new ON new.payee_id = paid.recipient_id
"""


def _refuse_plan_moved_on(cur: psycopg2.extensions.cursor, code: str, billed_version: int) -> None:
    found = plans.current(cur, code)
    if found is None or found.status != "ACTIVE":
        raise CommitConflict(f"plan {code} was closed since the proposal; nothing is billed")
    if found.version != billed_version:
        raise CommitConflict(f"plan {code} changed since the proposal (version {found.version}, the bills were "
                             f"computed with version {billed_version}); run the cycle again")


def _refuse_no_longer_active(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> None:
    """Each beneficiary to bill is still ACTIVE in the ledger (its latest version), not only when proposed.

    Stated as "a version that is not ACTIVE and has no later one" rather than "the latest version, per
    beneficiary": joins the planner can hash, not a look-up per bill (1,000,000 bills: 3.0 s -> 0.1 s when
    every beneficiary was enrolled ACTIVE, 3.5 s -> 0.9 s when each went POTENTIAL -> ACTIVE)."""
    request_id = proposal.key
    cur.execute(
        f"SELECT count(*), (array_agg(format('%%s (%%s, now %%s)', p.beneficiary_id,"
        f"  coalesce('household ' || p.household_code, 'individual ' || p.individual_id), latest.status)"
        f"  ORDER BY p.beneficiary_id))[1:5]"
        f" FROM {proposal.table} p JOIN ledger.beneficiary_versions latest"
        f"  ON latest.beneficiary_id = p.beneficiary_id AND latest.status <> 'ACTIVE'"
        f" WHERE p.request_id = %s AND NOT p.already_billed"
        f"  AND NOT EXISTS (SELECT FROM ledger.beneficiary_versions later"
        f"                  WHERE later.beneficiary_id = latest.beneficiary_id AND later.version > latest.version)",
        (request_id,))
    changed, first = cur.fetchone()
    if changed:
        raise CommitConflict(f"{changed} of the beneficiaries to bill are no longer ACTIVE (their status changed since "
                             f"the proposal): {', '.join(first)}{', ...' if changed > len(first) else ''}; "
                             f"run the cycle again to bill those still ACTIVE")


WORKFLOW = Workflow(
    dag_id="payment_cycle",
    intake=FormIntake(params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "cycle": Param("", type="string", minLength=1, maxLength=30,
                       description="The cycle's code, e.g. 2026-11 (letters, digits, . _ -)"),
        "period_start": Param("", type="string", format="date", description="First day of the period paid"),
        "period_end": Param("", type="string", format="date", description="Last day of the period paid"),
    }, describe=lambda options: f"cycle {options.get('cycle')} of {options.get('plan')}", plan_of=plan_parameter),
    validate=FormCheck(check=validate_cycle),
    propose=Proposal(summarise=summarise_cycle,
                     shown=("plan_code", "cycle_code", "period_start", "period_end", "amount", "held",
                            "already_billed")),
    approve=Approval(group="PaymentCheckers"),
    commit=Commit(append=commit_cycle, writes=("bills", "payment_cycles")),
    publish=Publish(asset="benefitflow://payments/bills"),
    tags=("payments",),
    recover=finish_payroll_files,
    doc_md="""
### Bill a plan's ACTIVE beneficiaries for one payment cycle

**Parameters** — `plan` (code), `cycle` (a code such as `2026-11`), `period_start` and
`period_end` (YYYY-MM-DD).

One bill per ACTIVE beneficiary (suspended, potential and graduated ones get none), its amount
from the plan's entitlement rule: fixed amount, per-member amount (members matching the rule's
criteria, up to `max_members`), matching top-ups, capped at `cap`, rounded to the cent. Bills
above `transaction_limit` are held until released by their own approval. The checker sees the
number of bills, the total, min/median/max, the bills held, and the difference from the
previous cycle. On approval the bills are frozen: later changes to the plan or the beneficiary
do not alter them. Running the cycle again bills only those not billed yet; a re-run keeps the
cycle's period, and cycles of one plan may not overlap. A member of `PaymentCheckers` other
than you approves.
""",
)
