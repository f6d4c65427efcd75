"""The registry API's messages in `registry_api.transactions`: recorded by the service, answered and delivered by
the `registry_api_search` DAG, and reported by the status endpoints.

A status request names a transaction by transaction_id, correlation_id or a list of reference_ids; only the
asking client's own transactions are ever looked at.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json

ATTRIBUTE_TYPES = ("transaction_id", "reference_id_list", "correlation_id")


class DuplicateMessage(ValueError):
    """The client sent this message_id before."""


@dataclass(frozen=True)
class Waiting:
    correlation_id: str
    client_id: str
    action: str
    body: dict[str, Any]  # the message as sent (to answer) or the answer (to deliver): {"header", "message"}
    attempts: int = 0  # deliveries tried so far


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def record(cur: psycopg2.extensions.cursor, *, correlation_id: str, client_id: str, action: str,
           header: dict[str, Any], message: Any, status: str, statuses: dict[str, Any] | None = None,
           response: dict[str, Any] | None = None) -> None:
    transaction_id = str(message.get("transaction_id")) if isinstance(message, dict) else ""
    cur.execute("SAVEPOINT record_transaction")
    try:
        cur.execute(
            "INSERT INTO registry_api.transactions (correlation_id, client_id, transaction_id, message_id, action,"
            " request, status, statuses, response, answered_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s IN ('succ', 'rjct') THEN now() END)",
            (correlation_id, client_id, transaction_id, header["message_id"], action,
             Json({"header": header, "message": message}), status, Json(statuses) if statuses else None,
             Json(response) if response else None, status))
    except psycopg2.errors.UniqueViolation as exc:
        cur.execute("ROLLBACK TO SAVEPOINT record_transaction")
        raise DuplicateMessage(f"message_id {header['message_id'][:99]} was sent before") from exc


def minimal_request(header: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """What is kept of an answered search: its header and reference ids, not its queries (they may name people;
    the audit trail keeps them)."""
    items = message.get("search_request") if isinstance(message.get("search_request"), list) else []
    return {"header": header, "message": {"transaction_id": message.get("transaction_id"), "search_request": [
        {"reference_id": item.get("reference_id")} for item in items if isinstance(item, dict)]}}


def seen(cur: psycopg2.extensions.cursor, client_id: str, message_id: Any) -> bool:
    """Whether the client sent this message_id before (a replayed message is answered once)."""
    cur.execute("SELECT 1 FROM registry_api.transactions WHERE client_id = %s AND message_id = %s",
                (client_id, str(message_id)))
    return cur.fetchone() is not None


def item_statuses(answer: dict[str, Any] | None) -> dict[str, Any]:
    """What a status request may report of an answer: each item's status, never its records."""
    items = (answer or {}).get("search_response") or []
    return {"search_response": [{key: item[key] for key in ("reference_id", "timestamp", "status",
                                                           "status_reason_code", "status_reason_message")
                                 if key in item} for item in items]}


def lookup(cur: psycopg2.extensions.cursor, client_id: str, attribute_type: str,
           value: Any) -> tuple[str, str, str, dict[str, Any]] | None:
    """(transaction_id, correlation_id, status, item statuses) of the client's latest matching search."""
    if attribute_type == "reference_id_list":
        condition = sql.SQL("EXISTS (SELECT 1 FROM jsonb_array_elements(request -> 'message' -> 'search_request')"
                            " AS item WHERE item ->> 'reference_id' = ANY(%s))")
        argument: Any = [str(reference) for reference in value]
    else:
        condition = sql.SQL("{} = %s").format(sql.Identifier(attribute_type))  # one of ATTRIBUTE_TYPES' columns
        argument = str(value)
    cur.execute(sql.SQL("SELECT transaction_id, correlation_id, status, coalesce(statuses, '{{}}'::jsonb)"
                        " FROM registry_api.transactions WHERE client_id = %s AND action IN ('search', 'sync-search')"
                        " AND {}"
                        " ORDER BY received_at DESC LIMIT 1").format(condition), (client_id, argument))
    row = cur.fetchone()
    return (row[0], row[1], row[2], row[3]) if row else None


# -- the DAG's side --------------------------------------------------------------------------------------------
def signal_waiting(cur: psycopg2.extensions.cursor, stale_seconds: int) -> list[str]:
    """Correlation ids waiting for the DAG and not signalled within stale_seconds: now signalled."""
    cur.execute(
        "UPDATE registry_api.transactions SET signalled_at = now()"
        " WHERE (status = 'rcvd' OR (response IS NOT NULL AND delivered_at IS NULL))"
        " AND (signalled_at IS NULL OR signalled_at < now() - make_interval(secs => %s))"
        " RETURNING correlation_id", (stale_seconds,))
    return [row[0] for row in cur.fetchall()]


def next_to_answer(cur: psycopg2.extensions.cursor) -> Waiting | None:
    """The oldest waiting search, locked until the caller's transaction ends (a concurrent run skips it)."""
    cur.execute("SELECT correlation_id, client_id, action, request FROM registry_api.transactions"
                " WHERE status = 'rcvd' AND action = 'search' ORDER BY received_at LIMIT 1 FOR UPDATE SKIP LOCKED")
    row = cur.fetchone()
    return Waiting(*row) if row else None


def answered(cur: psycopg2.extensions.cursor, waiting: Waiting, status: str, response: dict[str, Any],
             run_id: str) -> None:
    """The answer kept until delivered; of the message, once answered, only what minimal_request keeps."""
    cur.execute(
        "UPDATE registry_api.transactions SET status = %s, response = %s, statuses = %s, answered_at = now(),"
        " answered_by_run = %s, request = %s WHERE correlation_id = %s",
        (status, Json(response), Json(item_statuses(response.get("message"))), run_id,
         Json(minimal_request(waiting.body.get("header") or {}, waiting.body.get("message") or {})),
         waiting.correlation_id))


def next_to_deliver(cur: psycopg2.extensions.cursor, skip: list[str]) -> Waiting | None:
    """The oldest undelivered answer but those in `skip` (already tried by this run), locked likewise."""
    cur.execute("SELECT correlation_id, client_id, action, response, delivery_attempts FROM registry_api.transactions"
                " WHERE response IS NOT NULL AND delivered_at IS NULL AND NOT (correlation_id = ANY(%s))"
                " ORDER BY answered_at LIMIT 1 FOR UPDATE SKIP LOCKED", (skip,))
    row = cur.fetchone()
    return Waiting(*row) if row else None


def delivered(cur: psycopg2.extensions.cursor, correlation_id: str, error: str | None, *,
              give_up: bool = False) -> None:
    """A delivery tried: on success the answer (which may name people) is dropped, its statuses kept; given up
    (too many attempts), it is dropped too and the message is rjct."""
    if error is None or give_up:
        cur.execute("UPDATE registry_api.transactions SET delivered_at = CASE WHEN %s THEN NULL ELSE now() END,"
                    " response = NULL, status = CASE WHEN %s THEN 'rjct' ELSE status END,"
                    " delivery_attempts = delivery_attempts + 1, last_delivery_error = %s"
                    " WHERE correlation_id = %s", (give_up, give_up, error, correlation_id))
    else:
        cur.execute("UPDATE registry_api.transactions SET delivery_attempts = delivery_attempts + 1,"
                    " last_delivery_error = %s WHERE correlation_id = %s", (error[:500], correlation_id))
