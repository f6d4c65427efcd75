"""Fresh planner statistics after a bulk append to the payments ledger (see migration 006)."""

from __future__ import annotations

import psycopg2.extensions

BULK_ROWS = 10_000


def after_bulk_append(cur: psycopg2.extensions.cursor, rows: int) -> None:
    """Analyze the payment tables once an append is large enough to change the planner's picture of them."""
    if rows >= BULK_ROWS:
        cur.execute("SELECT ledger.refresh_payment_statistics()")
