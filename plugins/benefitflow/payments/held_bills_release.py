"""The `held_bills_release` workflow: held bills (over the plan's transaction limit, or of people in a duplicate pair
nobody reviewed yet when the plan says so) released by their own approval.

A bill above the plan's `transaction_limit` is billed HELD and no payroll takes it. A maker asks
for the release of some (by bill code) or all of a cycle's held bills, with a reason; a payment
checker approves; the bills become DUE (a `DUE` event with the reason) and the next payroll of
the cycle takes them. A bill whose person is in a duplicate pair not reviewed yet, or was merged into another
record, stays held whatever the request asks.
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from airflow.sdk import Param

from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.core.parameters import code_of, money, reason_of
from benefitflow.payments.payroll import finish_payroll_files
from benefitflow.programmes import plans
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

MAX_BILLS = 10_000


def bill_codes_of(options: Options) -> list[str]:
    codes = options.get("bills") or []
    if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
        raise RequestError("bills: a list of bill codes (e.g. [\"BL000000042\"]), or empty for every held bill")
    if len(codes) > MAX_BILLS:
        raise RequestError(f"bills: at most {MAX_BILLS:,} codes in one request")
    return sorted({code.strip() for code in codes if code.strip()})


# Why a held bill stays held whatever a release asks: its payee (the person, or a GROUP plan's primary recipient)
# is in a duplicate pair nobody reviewed yet, or was merged into another record (the survivor is paid, not both).
KEPT_HELD = (
    "SELECT bl.bill_id, CASE WHEN latest.merged_into IS NOT NULL"
    "  THEN 'its person was merged into individual ' || latest.merged_into || ' (a duplicate): not paid'"
    "  ELSE 'its person is in duplicate pair ' || pairs.candidate_id || ', not reviewed yet: review it first' END"
    " FROM payments.bills bl"
    " LEFT JOIN registry.households h ON h.household_code = bl.household_code"
    " CROSS JOIN LATERAL (SELECT coalesce(bl.individual_id, h.primary_recipient_id) AS payee_id) payee"
    " LEFT JOIN LATERAL (SELECT v.merged_into FROM ledger.individual_versions v WHERE v.individual_id = payee.payee_id"
    "                    ORDER BY v.version DESC LIMIT 1) latest ON true"
    " LEFT JOIN LATERAL (SELECT c.candidate_id FROM registry.duplicate_candidates c WHERE c.status = 'OPEN'"
    "                    AND payee.payee_id IN (c.individual_a, c.individual_b) ORDER BY c.candidate_id LIMIT 1)"
    "  pairs ON true"
    " WHERE bl.cycle_code = %(cycle)s AND bl.plan_code = %(plan)s AND bl.status = 'HELD'"
    "   AND (latest.merged_into IS NOT NULL OR pairs.candidate_id IS NOT NULL)")


def validate_release(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    plan = plans.require(cur, options.get("plan")).plan
    cycle, reason, codes = code_of(options, "cycle"), reason_of(options), bill_codes_of(options)
    kept = {"cycle": cycle, "plan": plan.code}
    if codes:
        cur.execute("SELECT code, coalesce(kept.why, bl.status || ', not held') FROM unnest(%(codes)s::text[]) AS code"
                    " LEFT JOIN payments.bills bl"
                    " ON bl.bill_code = code AND bl.cycle_code = %(cycle)s AND bl.plan_code = %(plan)s"
                    f" LEFT JOIN ({KEPT_HELD}) AS kept (bill_id, why) ON kept.bill_id = bl.bill_id"
                    " WHERE bl.status IS DISTINCT FROM 'HELD' OR kept.why IS NOT NULL ORDER BY code",
                    {**kept, "codes": codes})
        if refused := cur.fetchall():
            raise RequestError("; ".join(f"{code}: {why or f'no bill of cycle {cycle} of plan {plan.code}'}"
                                         for code, why in refused[:20]))
    cur.execute("INSERT INTO intake.request_selection (request_id, bill_id, beneficiary_id)"
                " SELECT %(request)s, bill_id, beneficiary_id FROM payments.bills"
                " WHERE cycle_code = %(cycle)s AND plan_code = %(plan)s AND status = 'HELD'"
                " AND (cardinality(%(codes)s::text[]) = 0 OR bill_code = ANY(%(codes)s::text[]))"
                f" AND bill_id NOT IN (SELECT bill_id FROM ({KEPT_HELD}) AS kept (bill_id, why))",
                {**kept, "request": request_id, "codes": codes})
    selected = cur.rowcount
    cur.execute(f"SELECT count(*) FROM ({KEPT_HELD}) AS kept", kept)
    kept_held = cur.fetchone()[0]
    if selected == 0:
        raise RequestError(f"no held bills in cycle {cycle} of plan {plan.code}"
                           + (f" to release ({kept_held} kept held for duplicate people)" if kept_held else ""))
    return {"plan": plan.code, "cycle": cycle, "reason": reason, "bills": codes or "every held bill",
            "bills_selected": selected, "held_for_duplicate_people": kept_held,
            "transaction_limit": (plan.document.get("entitlement") or {}).get("transaction_limit")}


def summarise_release(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(f"SELECT count(*), coalesce(sum(amount), 0), max(amount), min(currency) FROM {proposal.table}"
                f" WHERE request_id = %s", (request_id,))
    bills, total, largest, currency = cur.fetchone()
    cur.execute(f"SELECT bill_code, amount FROM {proposal.table} WHERE request_id = %s ORDER BY amount DESC, bill_code"
                f" LIMIT 10", (request_id,))
    return {"bills_released": bills, "total": money(total, currency), "largest": money(largest, currency),
            "largest_bills": {code: money(amount, currency) for code, amount in cur.fetchall()}}


def commit_release(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """DUE events for the held bills; refused if any of them was released by another run since."""
    request_id = proposal.key
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.payroll'))")  # payrolls read bill statuses
    cur.execute(f"SELECT count(*) FROM {proposal.table} p WHERE p.request_id = %s"
                f" AND (EXISTS (SELECT 1 FROM ledger.bill_events e WHERE e.bill_id = p.bill_id"
                f"              AND e.status IN ('DUE', 'PAID', 'FAILED'))"
                f"      OR p.bill_id IN (SELECT bill_id FROM ledger.cancelled_bills()))", (request_id,))
    if released := cur.fetchone()[0]:
        raise CommitConflict(f"{released} of these bills were released by another run, or cancelled by a merge of "
                             f"duplicate records, since the proposal")
    cur.execute(f"INSERT INTO ledger.bill_events (bill_id, status, reason, commit_id)"
                f" SELECT p.bill_id, 'DUE', 'released: ' || (r.document->>'reason'), %s FROM {proposal.table} p"
                f" JOIN intake.requests r USING (request_id) WHERE p.request_id = %s", (commit_id, request_id))
    return cur.rowcount


WORKFLOW = Workflow(
    dag_id="held_bills_release",
    intake=FormIntake(params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "cycle": Param("", type="string", minLength=1, maxLength=30, description="The cycle's code"),
        "bills": Param([], type="array", items={"type": "string"},
                       description="Codes of the held bills to release (e.g. BL000000042); empty: every held bill "
                                   "of the cycle"),
        "reason": Param("", type="string", minLength=1, maxLength=500,
                        description="Why these amounts may be paid (kept with each bill)"),
    }, describe=lambda options: f"release of held bills of cycle {options.get('cycle')} of {options.get('plan')}",
       plan_of=plan_parameter),
    validate=FormCheck(check=validate_release),
    propose=Proposal(summarise=summarise_release),
    approve=Approval(group="PaymentCheckers"),
    commit=Commit(append=commit_release, writes=("bill_events",)),
    publish=Publish(asset="benefitflow://payments/bills"),
    tags=("payments",),
    recover=finish_payroll_files,
    doc_md="""
### Release bills held over the plan's transaction limit

**Parameters** — `plan` and `cycle` (codes); `bills`: the held bills' codes (the `Code` of the
payments export), or empty for every held bill of the cycle; `reason` (kept with each bill).

A bill above the plan's `transaction_limit` is created HELD and no payroll takes it until a
member of `PaymentCheckers` other than you approves its release. The checker sees how many bills,
their total and the largest amounts. Released bills are DUE: the next `payroll` of the cycle
takes them. Codes that are not held bills of this cycle and plan are refused, naming each.
""",
)
