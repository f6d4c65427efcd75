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
    return cur.rowcount
