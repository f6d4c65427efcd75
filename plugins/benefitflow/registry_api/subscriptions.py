"""Subscriptions to registry events (DCI `/registry/subscribe`, `/registry/unsubscribe`) and their `notify`.

A client subscribes to one event type, REGISTER (a person registered), UPDATE (a field the client may read
changed) or NewHouseHoldMember (a person joined a household; for clients that may read households), among the
people its filter selects (the three query types, compiled with its scope, as a search is). The answer
(on-subscribe, on-unsubscribe) goes to its callback. After each publish of the registry, `notify_changes` (the
`registry_api_notify` DAG) takes, per subscription, the commits the registry's state took in since the
publish run it last notified (a set of commits, never "commit ids above": migration 012 says why), derives
its events from those commits' versions, records one `notify` message per page of records in the client's
scope (keyset pages in one repeatable-read snapshot), and moves the mark, in one transaction; delivery is
the registry_api_search DAG's, as for every answer.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json

from benefitflow.core import audit, db
from benefitflow.registry import schema
from benefitflow.registry_api import clients, queries, records, search, signing, transactions
from benefitflow.registry_api.clients import QUERY_TYPES, Client, Settings

EVENT_TYPES = ("REGISTER", "UPDATE", "NewHouseHoldMember")
REGISTRY_MODEL = "registry.individuals"  # the state model whose taken-in commits say what was published
MAX_NOTIFIED_PER_RUN = 10_000  # records one subscription is sent after one publish; beyond, search
MAX_SUBSCRIPTIONS_PER_CLIENT = 100
NOTIFY_ACTION = "registry_api.notify"


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
    answers, seen = [], set()
    for item in items:
        answer = _subscribe_item(cur, client, settings, item, seen)
        seen.add(answer["reference_id"])
        answers.append(answer)
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


def _subscribe_item(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, item: Any,
                    seen: set[str]) -> dict[str, Any]:
    reference_id = item.get("reference_id") if isinstance(item, dict) else None
    answer: dict[str, Any] = {"reference_id": str(reference_id or "")[:search.MAX_ID_LENGTH] or "-",
                              "timestamp": search.now_iso()}

    def rejected(code: str, why: str) -> dict[str, Any]:
        return answer | {"status": "rjct", "status_reason_code": code, "status_reason_message": why[:999]}

    if not isinstance(reference_id, str) or not 0 < len(reference_id) <= search.MAX_ID_LENGTH:
        return rejected("rjct.reference_id.invalid", "reference_id must be text of 1 to 99 characters")
    if reference_id in seen:
        return rejected("rjct.reference_id.duplicate", f"reference_id {reference_id} is used twice")
    if not search.is_timestamp(item.get("timestamp")):
        return rejected("rjct.timestamp.invalid", "timestamp must be an ISO 8601 date and time with a time zone")
    criteria = item.get("subscribe_criteria")
    if not isinstance(criteria, dict):
        return rejected("rjct.notify_details.invalid", "subscribe_criteria is an object")
    event = criteria.get("reg_event_type")
    if event not in EVENT_TYPES:
        return rejected("rjct.notify_types.invalid", f"reg_event_type: one of {', '.join(EVENT_TYPES)}")
    if event == "NewHouseHoldMember" and not client.may_read("household_code"):
        raise search.Forbidden("households are not in this client's scope")
    if "frequency" in criteria:
        return rejected("rjct.notify_details.invalid", "frequency is not supported: notifications follow each "
                                                       "publish of the registry")
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
                (Json(query), [event], record_type, client.client_id))
    same, active = cur.fetchone()
    if same:
        return rejected("rjct.event.already_subscribed", "this client already has this subscription")
    if active >= MAX_SUBSCRIPTIONS_PER_CLIENT:
        return rejected("rjct.notify_details.invalid", f"at most {MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions")
    code = str(uuid.uuid4())
    cur.execute(
        "INSERT INTO registry_api.subscriptions (code, client_id, reference_id, event_types, filter_type, filter,"
        " record_type, notified_take_in) SELECT %s, %s, %s, %s, %s, %s, %s, coalesce(max(take_in), 0)"
        " FROM publishing.taken_in_commits WHERE model = %s",
        (code, client.client_id, reference_id, [event], filter_type, Json(query), record_type, REGISTRY_MODEL))
    return answer | {"status": "succ", "subscriptions": [{
        "version": search.VERSION, "code": code, "status": "subscribe", "timestamp": answer["timestamp"],
        "reg_type": "ns:org:RegistryType:Social", "reg_event_type": event,
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
    if problem is None and not search.is_timestamp(message.get("timestamp")):
        problem = ("rjct.message_ts.invalid", "timestamp must be an ISO 8601 date and time with a time zone")
    if problem:
        return {"header": search.reply_header(client.client_id, "on-unsubscribe", "rjct", total=1, reason=problem)}
    cur.execute("SELECT code, status FROM registry_api.subscriptions WHERE client_id = %s AND code = ANY(%s)"
                " FOR UPDATE", (client.client_id, codes))
    known = dict(cur.fetchall())
    cur.execute("UPDATE registry_api.subscriptions SET status = 'unsubscribe', unsubscribed_at = now(),"
                " ended_reason = 'unsubscribed by the client' WHERE client_id = %s AND code = ANY(%s)"
                " AND status = 'subscribe'", (client.client_id, codes))
    reply: dict[str, Any] = {"transaction_id": transaction_id, "correlation_id": correlation_id,
                             "timestamp": search.now_iso(), "status": "succ",
                             "subscription_status": [{"code": code, "status": "unsubscribe"} for code in codes
                                                     if code in known]}
    if set(codes) - set(known):  # another client's codes are as unknown as made-up ones
        reply |= {"status": "rjct", "status_reason_code": "rjct.subscription_code.invalid",
                  "status_reason_message": f"{len(set(codes) - set(known))} code(s) are no subscription of this client"}
    elif any(status == "unsubscribe" for status in known.values()):
        reply |= {"status": "rjct", "status_reason_code": "rjct.event.already_unsubscribed",
                  "status_reason_message": "some of these subscriptions had ended before"}
    completed = 1 if reply["status"] == "succ" else 0
    return {"header": search.reply_header(client.client_id, "on-unsubscribe", "succ", total=1, completed=completed),
            "message": reply}


# -- notify (the registry_api_notify DAG) ----------------------------------------------------------------------
class NotifyFailed(RuntimeError):
    """Some subscriptions could not be notified (each was left as it was): the task fails and Airflow retries."""


def notify_changes(run_id: str) -> int:
    """Record the notifications of every active subscription, each in a repeatable-read transaction of its own;
    one that fails is left as it was (its mark unmoved) and the others go on."""
    recorded, done, failed = 0, [], []
    while True:
        with db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # every page from one snapshot
            cur.execute("SET LOCAL statement_timeout = '60s'")
            cur.execute("SELECT code, client_id, event_types[1], filter_type, filter, record_type, notified_take_in"
                        " FROM registry_api.subscriptions WHERE status = 'subscribe' AND NOT (code = ANY(%s))"
                        " ORDER BY code LIMIT 1 FOR UPDATE SKIP LOCKED", (done,))
            row = cur.fetchone()
            if row is None:
                break
            done.append(row[0])
            cur.execute("SAVEPOINT subscription")
            try:
                recorded += _notify(cur, *row, run_id=run_id)
            except Exception as exc:  # noqa: BLE001 - one subscription's fault must not stop the others
                cur.execute("ROLLBACK TO SAVEPOINT subscription")
                failed.append(f"{row[0]}: {type(exc).__name__}: {str(exc)[:200]}")
    if failed:
        raise NotifyFailed(f"{len(failed)} subscription(s) not notified (retried): {'; '.join(failed[:3])}")
    return recorded


def _notify(cur: psycopg2.extensions.cursor, code: str, client_id: str, event_type: str, filter_type: str,
            query: Any, record_type: str, mark: int, *, run_id: str) -> int:
    settings = clients.settings()
    client = settings.clients.get(client_id)
    try:
        if client is None:
            raise search.Forbidden(f"client {client_id} is no longer registered")
        if record_type not in client.record_types:
            raise search.Forbidden(f"record type {record_type} is no longer in this client's scope")
        if event_type == "NewHouseHoldMember" and not client.may_read("household_code"):
            raise search.Forbidden("households are no longer in this client's scope")
        compiled = queries.compile_query(filter_type, query, client, settings, records.search_fields())
    except (search.Forbidden, queries.QueryRefused) as exc:  # the scope narrowed since: the subscription ends
        _end(cur, code, client_id, str(exc), run_id)
        return 0
    cur.execute("SELECT coalesce(max(take_in), %s) FROM publishing.taken_in_commits WHERE model = %s AND take_in > %s",
                (mark, REGISTRY_MODEL, mark))
    up_to = int(cur.fetchone()[0])
    if up_to == mark:
        return 0
    _changed_people(cur, client, event_type, mark, up_to)
    changed = sql.SQL("{} AND i.individual_id IN (SELECT individual_id FROM pg_temp.notify_people)").format(
        compiled.condition)
    started, sent, pages, last = time.perf_counter(), [], 0, None
    while len(sent) < MAX_NOTIFIED_PER_RUN:
        page = _page_after(cur, client, settings, record_type, changed, last)
        if not page.records:
            break
        _record_notification(cur, client, code, event_type, record_type, page)
        sent += page.ids
        pages += 1
        last = page.households[-1] if record_type == "Group" else page.ids[-1]
    cur.execute("UPDATE registry_api.subscriptions SET notified_take_in = %s WHERE code = %s", (up_to, code))
    if pages:  # one event per subscription and run, last in the transaction (the audit chain's lock is brief)
        outcome = "TRUNCATED" if len(sent) >= MAX_NOTIFIED_PER_RUN else "RECORDED"
        audit.record(cur, actor=f"registry-api:{client_id}", action=NOTIFY_ACTION, object_type="registry_api",
                     object_id="/registry/notify", outcome=outcome,
                     details={"client": client_id, "subscription": code, "event_type": event_type,
                              "dag_run_id": run_id, "messages": pages, "returned": len(sent), "ids": sent,
                              "commits_from_take_in": mark, "commits_to_take_in": up_to,
                              "milliseconds": round((time.perf_counter() - started) * 1000, 1)})
    return pages


def _changed_people(cur: psycopg2.extensions.cursor, client: Client, event_type: str, mark: int, up_to: int) -> None:
    """pg_temp.notify_people: who the event is about, from the versions of the commits published in (mark, up_to]."""
    readable = [sql.SQL("v.{} IS DISTINCT FROM p.{}").format(sql.Identifier(name), sql.Identifier(name))
                for name in records.PERSON_COLUMNS if client.may_read(name)]
    variables = [prop.name for prop in schema.load().variables if client.may_read(prop.name)]
    if variables:
        readable.append(sql.SQL("(SELECT jsonb_object_agg(k, v.attributes -> k) FROM unnest({}::text[]) AS k) IS"
                                " DISTINCT FROM (SELECT jsonb_object_agg(k, p.attributes -> k) FROM unnest({}::text[])"
                                " AS k)").format(sql.Literal(variables), sql.Literal(variables)))
    event = {
        "REGISTER": sql.SQL("v.version = 1"),
        # A change the client cannot see is no event for it.
        "UPDATE": sql.SQL("v.version > 1 AND ({})").format(sql.SQL(" OR ").join(readable) or sql.SQL("false")),
        "NewHouseHoldMember": sql.SQL("v.household_code IS NOT NULL AND (v.version = 1"
                                      " OR v.household_code IS DISTINCT FROM p.household_code)"),
    }[event_type]
    cur.execute("DROP TABLE IF EXISTS pg_temp.notify_people")
    cur.execute(sql.SQL(
        "CREATE TEMPORARY TABLE notify_people ON COMMIT DROP AS"
        " SELECT DISTINCT v.individual_id FROM ledger.individual_versions AS v"
        " LEFT JOIN ledger.individual_versions AS p ON p.individual_id = v.individual_id AND p.version = v.version - 1"
        " WHERE v.commit_id IN (SELECT commit_id FROM publishing.taken_in_commits"
        "                       WHERE model = %s AND take_in > %s AND take_in <= %s) AND {}").format(event),
        (REGISTRY_MODEL, mark, up_to))
    cur.execute("ANALYZE pg_temp.notify_people")


def _page_after(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, record_type: str,
                changed: sql.Composable, last: str | None) -> records.Page:
    """The next page after `last` (a keyset: no page shifts when the snapshot's rows are read again)."""
    if record_type == "Group":
        after = sql.SQL(" AND i.household_code > {}").format(sql.Literal(last)) if last else sql.SQL("")
        return records.groups_page(cur, client, settings, sql.Composed([changed, after]), [], client.max_page_size, 0)
    after = sql.SQL(" AND i.individual_id > {}::uuid").format(sql.Literal(last)) if last else sql.SQL("")
    return records.members_page(cur, client, settings, sql.Composed([changed, after]), [], client.max_page_size, 0)


def _end(cur: psycopg2.extensions.cursor, code: str, client_id: str, why: str, run_id: str) -> None:
    cur.execute("UPDATE registry_api.subscriptions SET status = 'unsubscribe', unsubscribed_at = now(),"
                " ended_reason = %s WHERE code = %s", (why[:300], code))
    audit.record(cur, actor=f"registry-api:{client_id}", action=NOTIFY_ACTION, object_type="registry_api",
                 object_id="/registry/notify", outcome="ENDED",
                 details={"client": client_id, "subscription": code, "reason": why[:300], "dag_run_id": run_id})


def _record_notification(cur: psycopg2.extensions.cursor, client: Client, code: str, event_type: str,
                         record_type: str, page: records.Page) -> None:
    now = search.now_iso()
    header = {"version": search.VERSION, "message_id": str(uuid.uuid4()), "message_ts": now, "action": "notify",
              "status": "succ", "sender_id": signing.SERVICE_ID, "receiver_id": client.client_id, "total_count": 1,
              "is_msg_encrypted": False}
    message = {"transaction_id": str(uuid.uuid4()), "notify_event": [{
        "reference_id": code, "timestamp": now, "locale": "eng",
        "data": {"version": search.VERSION, "reg_type": "ns:org:RegistryType:Social", "reg_event_type": event_type,
                 "response_entity": record_type, "reg_records": page.records}}]}
    transactions.record(cur, correlation_id=transactions.new_correlation_id(), client_id=client.client_id,
                        action="notify", header=header,
                        message={"transaction_id": message["transaction_id"], "subscription": code}, status="succ",
                        response={"header": header, "message": message})


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

    # Either publish may have registered people (beneficiaries_import registers those it does not know).
    registry_published = Asset("benefitflow://registry/individuals") | Asset("benefitflow://programmes/beneficiaries")
    with DAG(dag_id=DAG_ID, schedule=registry_published, start_date=datetime(2026, 1, 1),
             catchup=False, max_active_runs=1, tags=["registry_api", "partners"], doc_md=DOC,
             default_args={"owner": "benefitflow"}) as dag:

        @task(task_id="notify", retries=3, retry_delay=timedelta(seconds=10), retry_exponential_backoff=True)
        def notify(run_id: str | None = None) -> int:
            return notify_changes(run_id or "")

        notify()
    return dag
