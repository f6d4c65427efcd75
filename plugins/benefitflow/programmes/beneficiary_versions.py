"""Beneficiary versions appended by a commit, once the plan's state allows them (enrolment, import)."""

from __future__ import annotations

import psycopg2.errors
import psycopg2.extensions

from benefitflow.core.errors import CommitConflict
from benefitflow.programmes import plans


def append_beneficiaries(
    cur: psycopg2.extensions.cursor, code: str, enrolling: int, insert: str, parameters: tuple[object, ...],
) -> int:
    """Run `insert` (beneficiary versions, `enrolling` of them new) unless, since the proposal, the plan
    was closed, its max_beneficiaries would be exceeded, or a person was enrolled by another run."""
    plans.lock_plan(cur, code)
    found = plans.current(cur, code)
    if found is not None and found.status != "ACTIVE":
        raise CommitConflict(f"plan {code} was {found.status.lower()} since the proposal; nothing is enrolled")
    capacity = found.plan.max_beneficiaries if found else None
    cur.execute("SELECT count(*) FROM ledger.beneficiary_versions WHERE plan_code = %s AND version = 1", (code,))
    enrolled = cur.fetchone()[0]
    if capacity is not None and enrolled + enrolling > capacity:
        raise CommitConflict(f"plan {code} now has {enrolled} beneficiaries; {enrolling} more would exceed "
                             f"max_beneficiaries {capacity}; ask again")
    cur.execute("SAVEPOINT enrol")
    try:
        cur.execute(insert, parameters)
    except psycopg2.errors.UniqueViolation as exc:
        cur.execute("ROLLBACK TO SAVEPOINT enrol")
        raise CommitConflict(f"some were enrolled in plan {code} by another run since the proposal; ask again") from exc
    appended = cur.rowcount
    cur.execute(_ENROLLED_TWICE_THROUGH_MERGES, {"plan": code})
    if twice := cur.fetchone()[0]:
        cur.execute("ROLLBACK TO SAVEPOINT enrol")
        raise CommitConflict(f"{twice} of these people were merged as duplicates since the proposal (a merged record, "
                             f"or a survivor that took its enrolment in plan {code}); ask again")
    return appended


# After the insert, from the few merged records and moved enrolments (migration 027): a person enrolled twice in the
# plan (a survivor's own enrolment beside the one a merge moved to it) or a merged record enrolled. A merge moves or
# graduates every enrolment of the record it retires, so either is an enrolment proposed before a merge.
_ENROLLED_TWICE_THROUGH_MERGES = """
WITH people AS (
    SELECT moved.individual_id FROM ledger.moved_enrolments() AS moved
    UNION SELECT merged.individual_id FROM ledger.merged_records() AS merged
),
enrolments AS (
    SELECT moved.beneficiary_id FROM ledger.moved_enrolments() AS moved
    UNION
    SELECT v.beneficiary_id FROM ledger.beneficiary_versions v
    WHERE v.plan_code = %(plan)s AND v.version = 1 AND v.individual_id IN (SELECT individual_id FROM people)
),
latest AS (
    SELECT DISTINCT ON (v.beneficiary_id) v.beneficiary_id, v.individual_id, v.status
    FROM ledger.beneficiary_versions v
    WHERE v.beneficiary_id IN (SELECT beneficiary_id FROM enrolments) AND v.plan_code = %(plan)s
    ORDER BY v.beneficiary_id, v.version DESC
)
SELECT count(DISTINCT latest.individual_id)
FROM latest
WHERE latest.status <> 'GRADUATED'
  AND (latest.individual_id IN (SELECT merged.individual_id FROM ledger.merged_records() AS merged)
       OR (SELECT count(*) FROM latest AS other
           WHERE other.individual_id = latest.individual_id AND other.status <> 'GRADUATED') > 1)
"""
