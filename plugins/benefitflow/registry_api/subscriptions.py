"""Subscriptions to registry events (DCI `/registry/subscribe`, `/registry/unsubscribe`) and their `notify`.

A client subscribes to REGISTER (a person registered), UPDATE (a person's record changed) or
NewHouseHoldMember (a person joined a household) among the people its filter selects (the three query types,
compiled with its scope, as a search is). The answer (on-subscribe, on-unsubscribe) goes to its callback.
After each publish of the registry, `notify_changes` (the `registry_api_notify` DAG) finds, per subscription,
the people whose latest version was committed after its high-water mark and who match, records one `notify`
message per page of records in the client's scope, and moves the mark, in one transaction; delivery is the
registry_api_search DAG's, as for every answer.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json

from benefitflow.core import audit, db
from benefitflow.registry_api import clients, queries, records, search, signing, transactions
from benefitflow.registry_api.clients import QUERY_TYPES, Client, Settings

EVENT_TYPES = ("REGISTER", "UPDATE", "NewHouseHoldMember")
MAX_SUBSCRIPTIONS_PER_CLIENT = 100
# Which changed people each event is about (the latest version of each, committed after the mark).
EVENT_CONDITIONS = {
    "REGISTER": sql.SQL("i.version = 1"),
    "UPDATE": sql.SQL("i.version > 1"),
    "NewHouseHoldMember": sql.SQL(
        "i.household_code IS NOT NULL AND (i.version = 1 OR EXISTS (SELECT 1 FROM ledger.individual_versions AS p"
        " WHERE p.individual_id = i.individual_id AND p.version = i.version - 1"
        " AND p.household_code IS DISTINCT FROM i.household_code))"),
}


# -- subscribe and unsubscribe (the service) -------------------------------------------------------------------
def subscribe(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, header: dict[str, Any],
              message: Any, correlation_id: str) -> dict[str, Any]:
    """The on-subscribe envelope; Forbidden if any item reaches outside the client's scope."""
    if not isinstance(message, dict) or not isinstance(message.get("subscribe_request"), list):
        raise search.BadRequest("message must be a SubscribeRequest: {transaction_id, subscribe_request: [...]}")
    transaction_id = _transaction_id(message)
    items = message["subscribe_request"]
    problem = search.header_problem(header, "subscribe", len(items))
    if problem is None and not 0 < len(items) <= settings.max_batch:
        problem = ("rjct.total_count.limit_exceeded", f"1 to {settings.max_batch} subscriptions in one message")
    if problem:
        return {"header": search.reply_header(client.client_id, "on-subscribe", "rjct", total=len(items),
                                              reason=problem)}
    answers = [_subscribe_item(cur, client, settings, item) for item in items]
    done = sum(1 for answer in answers if answer["status"] == "succ")
    return {"header": search.reply_header(client.client_id, "on-subscribe", "succ", total=len(answers),
                                          completed=done),
            "message": {"transaction_id": transaction_id, "correlation_id": correlation_id,
                        "subscribe_response": answers}}


def _transaction_id(message: dict[str, Any]) -> str:
    transaction_id = message.get("transaction_id")
    if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= search.MAX_ID_LENGTH:
        raise search.BadRequest(f"message.transaction_id must be text of 1 to {search.MAX_ID_LENGTH} characters")
    return transaction_id


def _subscribe_item(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, item: Any) -> dict[str, Any]:
    reference_id = item.get("reference_id") if isinstance(item, dict) else None
    answer: dict[str, Any] = {"reference_id": str(reference_id or "")[:search.MAX_ID_LENGTH] or "-",
                              "timestamp": search.now_iso()}

    def rejected(code: str, why: str) -> dict[str, Any]:
        return answer | {"status": "rjct", "status_reason_code": code, "status_reason_message": why[:999]}

    if not isinstance(reference_id, str) or not 0 < len(reference_id) <= search.MAX_ID_LENGTH:
        return rejected("rjct.reference_id.invalid", "reference_id must be text of 1 to 99 characters")
    if not search.is_timestamp(item.get("timestamp")):
        return rejected("rjct.timestamp.invalid", "timestamp must be an ISO 8601 date and time with a time zone")
    criteria = item.get("subscribe_criteria")
    if not isinstance(criteria, dict):
        return rejected("rjct.notify_details.invalid", "subscribe_criteria is an object")
    events = criteria.get("reg_event_type")
    events = [events] if isinstance(events, str) else events
    if not isinstance(events, list) or not events or not set(events) <= set(EVENT_TYPES):
        return rejected("rjct.notify_types.invalid", f"reg_event_type: one or more of {', '.join(EVENT_TYPES)}")
    record_type = search.RECORD_TYPE_NAMES.get(str(criteria.get("notify_record_type")
                                                   or criteria.get("response_entity") or "Member"))
    if record_type is None:
        return rejected("rjct.notify_details.invalid", "notify_record_type must be Member or Group")
    if record_type not in client.record_types:
        raise search.Forbidden(f"record type {record_type} is not in this client's scope")
    filter_type, query = criteria.get("filter_type"), criteria.get("filter")
    if filter_type not in QUERY_TYPES or query is None:
        return rejected("rjct.notify_details.invalid", f"filter_type ({', '.join(QUERY_TYPES)}) and filter are needed")
    try:
        queries.compile_query(filter_type, query, client, settings, records.search_fields())
    except queries.QueryRefused as exc:
        if exc.forbidden:
            raise search.Forbidden(str(exc)) from exc
        return rejected("rjct.notify_details.invalid", str(exc))
    cur.execute("SELECT count(*) FILTER (WHERE filter = %s AND event_types = %s AND record_type = %s), count(*)"
                " FROM registry_api.subscriptions WHERE client_id = %s AND status = 'subscribe'",
                (Json(query), sorted(set(events)), record_type, client.client_id))
    same, active = cur.fetchone()
    if same:
        return rejected("rjct.event.already_subscribed", "this client already has this subscription")
    if active >= MAX_SUBSCRIPTIONS_PER_CLIENT:
        return rejected("rjct.notify_details.invalid", f"at most {MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions")
    code = str(uuid.uuid4())
    cur.execute(
        "INSERT INTO registry_api.subscriptions (code, client_id, reference_id, event_types, filter_type, filter,"
        " record_type, notified_up_to) SELECT %s, %s, %s, %s, %s, %s, %s, coalesce(max(last_commit_id), 0)"
        " FROM registry.individuals", (code, client.client_id, reference_id, sorted(set(events)), filter_type,
                                       Json(query), record_type))
    return answer | {"status": "succ", "subscriptions": [{
        "version": search.VERSION, "code": code, "status": "subscribe", "timestamp": answer["timestamp"],
        "reg_type": "ns:org:RegistryType:Social", "reg_event_type": sorted(set(events))[0],
        "filter_type": filter_type, "filter": query, "notify_record_type": record_type}]}


def unsubscribe(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: Any,
                correlation_id: str) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise search.BadRequest("message must be an UnSubscribeRequest: {transaction_id, subscription_codes}")
    transaction_id = _transaction_id(message)
    codes = message.get("subscription_codes")
    if not isinstance(codes, list) or not 0 < len(codes) <= 100 or not all(isinstance(c, str) for c in codes):
        raise search.BadRequest("subscription_codes must be a list of 1 to 100 subscription codes")
    problem = search.header_problem(header, "unsubscribe", None)
    if problem:
        return {"header": search.reply_header(client.client_id, "on-unsubscribe", "rjct", total=1, reason=problem)}
    cur.execute("UPDATE registry_api.subscriptions SET status = 'unsubscribe', unsubscribed_at = now(),"
                " ended_reason = 'unsubscribed by the client'"
                " WHERE client_id = %s AND code = ANY(%s) AND status = 'subscribe' RETURNING code",
                (client.client_id, codes))
    ended = {row[0] for row in cur.fetchall()}
    reply: dict[str, Any] = {"transaction_id": transaction_id, "correlation_id": correlation_id,
                             "timestamp": search.now_iso(), "status": "succ" if ended == set(codes) else "rjct",
                             "subscription_status": [{"code": code, "status": "unsubscribe"} for code in codes
                                                     if code in ended]}
    if ended != set(codes):
        reply |= {"status_reason_code": "rjct.subscription_code.invalid",
                  "status_reason_message": f"{len(set(codes) - ended)} code(s) are no active subscription of "
                                           "this client"}
    return {"header": search.reply_header(client.client_id, "on-unsubscribe", "succ", total=1, completed=1),
            "message": reply}


# -- notify (the registry_api_notify DAG) ----------------------------------------------------------------------
def notify_changes(run_id: str) -> int:
    """Record the notifications of every active subscription, each in a transaction of its own."""
    recorded, done = 0, []
    while True:
        with db.transaction() as cur:
            cur.execute("SELECT code, client_id, event_types, filter_type, filter, record_type, notified_up_to"
                        " FROM registry_api.subscriptions WHERE status = 'subscribe' AND NOT (code = ANY(%s))"
                        " ORDER BY code LIMIT 1 FOR UPDATE SKIP LOCKED", (done,))
            row = cur.fetchone()
            if row is None:
                return recorded
            done.append(row[0])
            recorded += _notify(cur, *row, run_id=run_id)


def _notify(cur: psycopg2.extensions.cursor, code: str, client_id: str, event_types: list[str], filter_type: str,
            query: Any, record_type: str, mark: int, *, run_id: str) -> int:
    settings = clients.settings()
    client = settings.clients.get(client_id)
    try:
        if client is None:
            raise search.Forbidden(f"client {client_id} is no longer registered")
        if record_type not in client.record_types:
            raise search.Forbidden(f"record type {record_type} is no longer in this client's scope")
        compiled = queries.compile_query(filter_type, query, client, settings, records.search_fields())
    except (search.Forbidden, queries.QueryRefused) as exc:  # the scope narrowed since: the subscription ends
        cur.execute("UPDATE registry_api.subscriptions SET status = 'unsubscribe', unsubscribed_at = now(),"
                    " ended_reason = %s WHERE code = %s", (str(exc)[:300], code))
        return 0
    cur.execute("SELECT coalesce(max(last_commit_id), 0) FROM registry.individuals")
    up_to = int(cur.fetchone()[0])
    messages = 0
    for event_type in event_types:
        changed = sql.SQL("{} AND i.last_commit_id > {} AND i.last_commit_id <= {} AND {}").format(
            compiled.condition, sql.Literal(mark), sql.Literal(up_to), EVENT_CONDITIONS[event_type])
        fetch = records.groups_page if record_type == "Group" else records.members_page
        offset = 0
        while True:
            started = time.perf_counter()
            page = fetch(cur, client, settings, changed, [], client.max_page_size, offset)
            if not page.records:
                break
            _record_notification(cur, client, code, event_type, record_type, page, run_id, started)
            messages += 1
            offset += client.max_page_size
            if offset >= page.total_count:
                break
    cur.execute("UPDATE registry_api.subscriptions SET notified_up_to = %s WHERE code = %s", (up_to, code))
    return messages


def _record_notification(cur: psycopg2.extensions.cursor, client: Client, code: str, event_type: str,
                         record_type: str, page: records.Page, run_id: str, started: float) -> None:
    now = search.now_iso()
    header = {"version": search.VERSION, "message_id": str(uuid.uuid4()), "message_ts": now, "action": "notify",
              "sender_id": signing.SERVICE_ID, "receiver_id": client.client_id, "total_count": 1,
              "is_msg_encrypted": False}
    message = {"transaction_id": str(uuid.uuid4()), "notify_event": [{
        "reference_id": code, "timestamp": now, "locale": "eng",
        "data": {"version": search.VERSION, "reg_type": "ns:org:RegistryType:Social", "reg_event_type": event_type,
                 "response_entity": record_type, "reg_records": page.records}}]}
    correlation_id = transactions.new_correlation_id()
    transactions.record(cur, correlation_id=correlation_id, client_id=client.client_id, action="notify",
                        header=header, message={"transaction_id": message["transaction_id"], "subscription": code},
                        status="succ",
                        response={"header": header, "message": message})
    audit.record(cur, actor=f"registry-api:{client.client_id}", action="registry_api.answer",
                 object_type="registry_api", object_id="/registry/notify", outcome="ANSWERED",
                 details={"client": client.client_id, "endpoint": "/registry/notify", "http_status": 200,
                          "subscription": code, "correlation_id": correlation_id, "dag_run_id": run_id,
                          "items": [{"status": "succ", "event_type": event_type, "record_type": record_type,
                                     "returned": len(page.ids), "ids": page.ids}],
                          "returned": len(page.ids),
                          "milliseconds": round((time.perf_counter() - started) * 1000, 1)})


# -- the DAG ---------------------------------------------------------------------------------------------------
DAG_ID = "registry_api_notify"
DOC = """
### Partner systems' subscriptions: notifications after each publish of the registry (DCI `notify`)

Runs whenever the registry is published (asset `benefitflow://registry/individuals`). For each active
subscription it finds the people registered, changed or joining a household since the last commit it notified,
among those the subscription's filter selects, and records one `notify` message per page of records in the
client's scope; the `registry_api_search` DAG delivers them to the client's callback (retried with back-off,
each delivery in the audit trail). A subscription whose client or scope no longer allows it ends here.
"""


def build_dag() -> Any:
    from datetime import datetime, timedelta

    from airflow.sdk import DAG, Asset, task

    with DAG(dag_id=DAG_ID, schedule=[Asset("benefitflow://registry/individuals")], start_date=datetime(2026, 1, 1),
             catchup=False, max_active_runs=1, tags=["registry_api", "partners"], doc_md=DOC,
             default_args={"owner": "benefitflow"}) as dag:

        @task(task_id="notify", retries=3, retry_delay=timedelta(seconds=10), retry_exponential_backoff=True)
        def notify(run_id: str | None = None) -> int:
            return notify_changes(run_id or "")

        notify()
    return dag
