"""Asynchronous searches: answered by the `registry_api_search` DAG, delivered to each client's registered callback.

The service records an asynchronous search (or status request) and acknowledges it. The triggerer runs
`WaitingMessages`, an event trigger watching `registry_api.transactions`: when a message waits, it updates the
asset `registry_api_waiting`, which starts a run of `registry_api_search` (visible, retried and logged like every
workflow). The run answers every waiting search with the client's scope as it is now (`answer`), then posts
each answer, signed, to `<callback_url>/registry/on-search` or `/registry/txn/on-status` (`deliver`): a failed
delivery fails the task, which Airflow retries with back-off; the answer stays until delivered. It posts only to
the URL registered for the client in clients.yaml, never to a `sender_uri` a request names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg2.extensions
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from benefitflow.core import audit, db
from benefitflow.registry_api import clients, search, signing, transactions

DAG_ID = "registry_api_search"
ASSET_NAME = "registry_api_waiting"
POLL_SECONDS = 2.0
STALE_SECONDS = 300  # a message signalled this long ago and still waiting is signalled again
DELIVERY_TIMEOUT_SECONDS = 10
MAX_DELIVERY_ATTEMPTS = 12  # then the answer (which may name people) is dropped and the message marked rjct
ASYNC_ANSWER_ACTION = "registry_api.async_answer"  # not a request of the client's: the mart counts requests
CALLBACK_PATHS = {"search": "/registry/on-search", "txn-status": "/registry/txn/on-status",
                  "subscribe": "/registry/on-subscribe", "unsubscribe": "/registry/on-unsubscribe",
                  "notify": "/registry/notify"}


class DeliveryFailed(RuntimeError):
    """Some answers could not be delivered: the task fails and Airflow retries it."""


def signal_waiting() -> list[str]:
    with db.transaction() as cur:
        return transactions.signal_waiting(cur, STALE_SECONDS)


class WaitingMessages(BaseEventTrigger):
    """Yields an event whenever registry API messages wait to be answered or delivered (polled every 2 s)."""

    def __init__(self, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{__name__}.WaitingMessages", {"poll_seconds": self.poll_seconds}

    async def run(self) -> AsyncIterator[Any]:
        while True:
            try:
                waiting = await asyncio.to_thread(signal_waiting)
            except Exception as exc:  # noqa: BLE001 - the database restarting must not end the watch
                self.log.warning("registry API messages could not be read: %s", exc)
                waiting = []
            if waiting:
                yield TriggerEvent({"correlation_ids": waiting})
            await asyncio.sleep(self.poll_seconds)


# -- the run's steps -------------------------------------------------------------------------------------------
def answer_waiting(run_id: str) -> int:
    """Answer every waiting search, each in a transaction of its own (a crash leaves it waiting, not lost).

    A search that fails for a reason of ours (not the client's) is answered rjct rather than left to block
    those behind it."""
    answered = 0
    while True:
        with db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # a page and its total_count agree
            cur.execute("SET LOCAL statement_timeout = '10s'")  # as long as the service's own login may take
            waiting = transactions.next_to_answer(cur)
            if waiting is None:
                return answered
            cur.execute("SAVEPOINT answer")
            try:
                _answer(cur, waiting, run_id)
            except Exception as exc:  # noqa: BLE001 - e.g. a search cut short: the client is told, the queue moves
                cur.execute("ROLLBACK TO SAVEPOINT answer")
                _answer_failed(cur, waiting, run_id, exc)
        answered += 1


def _answer(cur: psycopg2.extensions.cursor, waiting: transactions.Waiting, run_id: str) -> None:
    started = time.perf_counter()
    settings = clients.settings()
    header, message = waiting.body["header"], waiting.body["message"]
    client = settings.clients.get(waiting.client_id)
    try:
        if client is None:
            raise search.Forbidden(f"client {waiting.client_id} is no longer registered")
        checked = search.check_search(client, settings, header, message)
        result = search.answer_search(cur, client, settings, header, checked, waiting.correlation_id)
    except (search.Forbidden, search.BadRequest) as exc:  # the client or its scope changed since it was taken in
        checked = search.Checked(str(message.get("transaction_id")), message.get("search_request") or [])
        result = search.Answered(search.reply_header(waiting.client_id, "on-search", "rjct",
                                                     total=len(checked.items),
                                                     reason=("rjct.action.not_supported", str(exc))), None,
                                 [{"status": "rjct", "reason": str(exc)[:300]}])
    response = {"header": result.header, **({"message": result.message} if result.message else {})}
    transactions.answered(cur, waiting, result.header["status"], response, run_id)
    audit.record(cur, actor=f"registry-api:{waiting.client_id}", action=ASYNC_ANSWER_ACTION,
                 object_type="registry_api", object_id="/registry/search", outcome=result.outcome,
                 details={"client": waiting.client_id, "endpoint": "/registry/search", "http_status": 200,
                          "message_id": header.get("message_id"), "transaction_id": checked.transaction_id,
                          "correlation_id": waiting.correlation_id, "dag_run_id": run_id,
                          "items": result.audit_items,
                          "returned": sum(item.get("returned", 0) for item in result.audit_items),
                          "milliseconds": round((time.perf_counter() - started) * 1000, 1)})


def _answer_failed(cur: psycopg2.extensions.cursor, waiting: transactions.Waiting, run_id: str,
                   exc: Exception) -> None:
    header = search.reply_header(waiting.client_id, "on-search", "rjct", total=len(
        (waiting.body.get("message") or {}).get("search_request") or []),
        reason=("rjct.errors.too_many", "the registry could not answer this search; send it again"))
    transactions.answered(cur, waiting, "rjct", {"header": header}, run_id)
    audit.record(cur, actor=f"registry-api:{waiting.client_id}", action=ASYNC_ANSWER_ACTION,
                 object_type="registry_api", object_id="/registry/search", outcome="FAILED",
                 details={"client": waiting.client_id, "correlation_id": waiting.correlation_id, "dag_run_id": run_id,
                          "error": f"{type(exc).__name__}: {str(exc)[:300]}"})


def deliver_answers(run_id: str) -> int:
    """Post every undelivered answer to its client's callback; DeliveryFailed if any did not arrive."""
    delivered, failed = 0, []
    while True:
        with db.transaction() as cur:
            waiting = transactions.next_to_deliver(cur, failed)
            if waiting is None:
                break
            error = _deliver(waiting)
            given_up = error is not None and waiting.attempts + 1 >= MAX_DELIVERY_ATTEMPTS
            transactions.delivered(cur, waiting.correlation_id, error, give_up=given_up)
            audit.record(cur, actor=f"registry-api:{waiting.client_id}", action="registry_api.delivery",
                         object_type="registry_api", object_id=CALLBACK_PATHS[waiting.action],
                         outcome="DELIVERED" if error is None else "GIVEN_UP" if given_up else "FAILED",
                         details={"client": waiting.client_id, "correlation_id": waiting.correlation_id,
                                  "dag_run_id": run_id, "error": error})
        if error is None:
            delivered += 1
        elif not given_up:
            failed.append(waiting.correlation_id)
    if failed:
        raise DeliveryFailed(f"{len(failed)} answer(s) not delivered (kept, retried): {', '.join(failed[:5])}")
    return delivered


def _deliver(waiting: transactions.Waiting) -> str | None:
    client = clients.settings().clients.get(waiting.client_id)
    if client is None or client.callback_url is None:
        return f"client {waiting.client_id} has no registered callback"
    body = waiting.body
    signed = {"signature": signing.sign(body["header"], body.get("message")), **body}
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS  # in all: a callback that drips is cut off too
    try:
        with httpx.stream("POST", client.callback_url + CALLBACK_PATHS[waiting.action], json=signed,
                          timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as answer:
            head = b""
            for chunk in answer.iter_bytes():
                head += chunk
                if len(head) > 1000 or time.monotonic() > deadline:
                    break
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if time.monotonic() > deadline:
        return f"the callback took more than {DELIVERY_TIMEOUT_SECONDS} s"
    return None if answer.is_success else f"HTTP {answer.status_code}: {head[:200].decode(errors='replace')}"


# -- the DAG ---------------------------------------------------------------------------------------------------
DOC = """
### Partner systems' asynchronous searches (DCI `/registry/search`, `/registry/txn/status`)

Started by the triggerer whenever the registry API has taken in a message (asset `registry_api_waiting`).
`answer` answers each waiting search with the client's scope as it is now; `deliver` posts each answer, signed,
to the client's callback registered in `plugins/benefitflow/registry_api/clients.yaml`. A delivery that fails
fails `deliver`, which is retried with back-off; the answer is kept until it arrives. Every answer and every
delivery is in the audit trail. Nothing here changes programme data, so there is no approval step.
"""


def build_dag() -> Any:
    from datetime import datetime, timedelta

    from airflow.sdk import DAG, Asset, AssetWatcher, task

    waiting = Asset(ASSET_NAME, uri=f"benefitflow://registry_api/{ASSET_NAME}",
                    watchers=[AssetWatcher(name="registry_api_messages", trigger=WaitingMessages())])
    with DAG(dag_id=DAG_ID, schedule=[waiting], start_date=datetime(2026, 1, 1), catchup=False,
             max_active_runs=1, tags=["registry_api", "partners"], doc_md=DOC,
             default_args={"owner": "benefitflow"}) as dag:

        @task(task_id="answer", retries=2, retry_delay=timedelta(seconds=10))
        def answer(run_id: str | None = None) -> int:
            return answer_waiting(run_id or "")

        @task(task_id="deliver", retries=6, retry_delay=timedelta(seconds=5), retry_exponential_backoff=True,
              max_retry_delay=timedelta(minutes=10))
        def deliver(run_id: str | None = None) -> int:
            return deliver_answers(run_id or "")

        answer() >> deliver()
    return dag
