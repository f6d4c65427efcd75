"""The audit trail: append events, verify the hash chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit event {self.event_id}: {self.problem}"


def record(
    cur: psycopg2.extensions.cursor,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    outcome: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one event in the caller's transaction; the database assigns id, time and hashes."""
    cur.execute(
        "INSERT INTO ledger.audit_events (actor, action, object_type, object_id, outcome, details)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb) RETURNING event_id",
        (actor, action, object_type, str(object_id), outcome, json.dumps(details or {}, default=str)),
    )
    return int(cur.fetchone()[0])


def first_time(cur: psycopg2.extensions.cursor, *, action: str, object_type: str, object_id: str) -> Any:
    """When `action` first happened to the object (None: never)."""
    cur.execute(
        "SELECT min(occurred_at) FROM ledger.audit_events WHERE action = %s AND object_type = %s AND object_id = %s",
        (action, object_type, object_id),
    )
    return cur.fetchone()[0]


def reference_breaks(cur: psycopg2.extensions.cursor) -> list[str]:
    """Ledger rows (and intake scratch rows) whose parent is missing, one line per broken reference
    (ledger.reference_breaks)."""
    cur.execute("SELECT constraint_name, table_name, missing_key, rows FROM ledger.reference_breaks()")
    return [f"{table}: {rows} row(s) break {name}, e.g. key ({key})" for name, table, key, rows in cur.fetchall()]


def first_break(cur: psycopg2.extensions.cursor) -> ChainBreak | None:
    cur.execute("SELECT event_id, problem FROM ledger.audit_chain_breaks() LIMIT 1")
    row = cur.fetchone()
    return ChainBreak(int(row[0]), row[1]) if row else None
