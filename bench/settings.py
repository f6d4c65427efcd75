"""What every benchmark shares: its size, its people, its plan and its payment rule, and two small helpers."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from typing import Any

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
MAKER, CHECKER = "bench-maker", "bench-checker"
PLAN = "BENCH"
# More than a fixed amount, so bills differ by person and check (a) recomputes each from the registry.
FIXED_AMOUNT, TOP_UP_AMOUNT, TOP_UP_SEX = Decimal("1000.00"), Decimal("250.50"), "F"
ENTITLEMENT = {
    "fixed_amount": str(FIXED_AMOUNT),
    "top_ups": [{"criteria": {"all": [{"field": "sex", "op": "=", "value": TOP_UP_SEX}]},
                 "amount": str(TOP_UP_AMOUNT)}],
    "transaction_limit": "100000.00",  # above every bill: none held, so every bill goes into the payroll
}
CYCLE_CODE, PERIOD = "BENCH-1", ("2026-01-01", "2026-01-31")  # inside the plan's validity (from 2026-01-01)
FAILED_EVERY = 50  # the provider answers "No" for every 50th row: 2% FAILED
PLANTED_PER_KIND = 5  # stale rows and mismatched amounts each: refused, then corrected in a second file
MIN_BILLS = 100  # room for the planted rows between the "No" answers
CHAIN_TARGET_SECONDS = 60.0  # issue 17; an earlier issue asked for 120 s
PEOPLE_PER_GRIEVANCE = 20
RECORD_SAMPLE = 20
SMALL_ROWS = 10
REFERENCE_ROWS = 10_000
SMALL_RATIO_TARGET, SMALL_SECONDS_TARGET = 1.5, 2.0
REFERENCE_OUT = os.environ.get("BENCH_REFERENCE_OUT")  # set for the 10,000-people run: where its figures go


def query_one(query: str, parameters: tuple[Any, ...]) -> Any:
    from benefitflow.core import db

    with db.transaction() as cur:
        cur.execute(query, parameters)
        return tuple(cur.fetchone())


def inbox_file(name: str, lines: list[str]) -> str:
    from benefitflow.core import config

    path = config.inbox() / f"{uuid.uuid4().hex[:8]}-{name}"
    path.write_text("\n".join(lines) + "\n")
    return path.name
