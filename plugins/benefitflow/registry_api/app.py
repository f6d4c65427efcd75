"""The registry API service (DCI Social Registry API 1.0.0): `uvicorn benefitflow.registry_api.app:app`.

A FastAPI application of its own, not a plugin of Airflow's api-server: partner systems are not Airflow users,
and nothing here may share Airflow's sessions, roles or database login. It reads through
BENEFITFLOW_REGISTRY_API_DATABASE_URL (the `benefitflow_registry_api` login: SELECT on the registry's state,
INSERT into the audit trail). Every answer, refusals included, is one event in the hash-chained audit trail:
the client, the query as sent, how many records and which ids were returned, the status and the time taken.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg2.errors
import psycopg2.extensions
import psycopg2.pool
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from benefitflow.core import audit
from benefitflow.registry_api import clients, search, signing, status, subscriptions, transactions
from benefitflow.registry_api.clients import Client

DATABASE_VARIABLE = "BENEFITFLOW_REGISTRY_API_DATABASE_URL"
log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20
MAX_FORM_BYTES = 4096
AUDIT_ACTION = "registry_api.answer"
POOL_SIZE = 8


class Refused(Exception):
    """An HTTP error answer: {"errors": [{"code", "message"}]} (the spec's HttpErrorResponse)."""

    def __init__(self, status: int, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.client_id = status, code, message, client_id


class RateLimiter:
    """At most a client's requests_per_minute in any sliding minute (one service process keeps the count)."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: Client) -> bool:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(client.client_id, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= client.requests_per_minute:
                return False
            seen.append(now)
            return True


_pool: psycopg2.pool.ThreadedConnectionPool | None = None
limiter = RateLimiter()


@asynccontextmanager
async def lifespan(_: FastAPI) -> Any:
    global _pool
    clients.settings()  # a wrong clients.yaml stops the service here, not at the first request
    signing.private_key()
    _pool = psycopg2.pool.ThreadedConnectionPool(1, POOL_SIZE, os.environ[DATABASE_VARIABLE])
    try:
        yield
    finally:
        _pool.closeall()
        _pool = None


OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")


@cache
def openapi_document() -> dict[str, Any]:
    """What this service answers, as an OpenAPI document (the tests validate every answer against it)."""
    return yaml.safe_load(OPENAPI_FILE.read_text())


app = FastAPI(title="benefitflow registry API (DCI Social Registry 1.0.0)", description=__doc__, lifespan=lifespan,
              docs_url=None, redoc_url=None)
app.openapi = openapi_document  # type: ignore[method-assign]


_connections = threading.BoundedSemaphore(POOL_SIZE)  # the pool refuses a ninth; a ninth request waits instead


@contextmanager
def transaction() -> Iterator[psycopg2.extensions.cursor]:
    assert _pool is not None
    with _connections:
        conn = _pool.getconn()
        try:
            with conn, conn.cursor() as cur:
                yield cur
        finally:
            _pool.putconn(conn)


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"errors": [{"code": code, "message": message[:999]}]}, status_code=status, headers=headers)


def _audit(endpoint: str, client_id: str | None, outcome: str, http_status: int, started: float,
           details: dict[str, Any]) -> None:
    with transaction() as cur:
        _audit_in(cur, endpoint, client_id, outcome, http_status, started, details)


def _audit_in(cur: psycopg2.extensions.cursor, endpoint: str, client_id: str | None, outcome: str, http_status: int,
              started: float, details: dict[str, Any]) -> None:
    audit.record(cur, actor=f"registry-api:{client_id or 'unknown'}", action=AUDIT_ACTION,
                 object_type="registry_api", object_id=endpoint, outcome=outcome,
                 details={"client": client_id, "endpoint": endpoint, "http_status": http_status,
                          "milliseconds": round((time.perf_counter() - started) * 1000, 1), **details})


async def _body(request: Request) -> Any:
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise Refused(413, "err.request.bad", f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise Refused(413, "err.request.bad", f"the body is larger than {MAX_BODY_BYTES} bytes")
    if "application/json" not in request.headers.get("content-type", ""):
        raise Refused(415, "err.request.bad", "send the message as application/json")
    return parse_json(raw)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """JSON whose every string PostgreSQL and UTF-8 can hold: no NUL, no lone surrogate; Refused otherwise."""
    try:
        document = json.loads(raw, parse_constant=_no_constant)
        text = json.dumps(document, ensure_ascii=False)
        text.encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError, as are huge ints
        raise Refused(400, "err.request.bad", f"the body is not JSON we can read: {str(exc)[:200]}") from exc
    if "\\u0000" in text or "\x00" in text:
        raise Refused(400, "err.request.bad", "the body holds a NUL character")
    return document


def _client(request: Request) -> Client:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "err.request.unauthorized", "send a bearer token from /oauth2/client/token")
    client_id = signing.token_client(token.strip())
    client = clients.settings().clients.get(client_id) if client_id else None
    if client is None:
        raise Refused(401, "err.request.unauthorized", "the bearer token is not valid (expired, or not ours)")
    if not limiter.allow(client):
        raise Refused(429, "err.request.too_many_requests",
                      f"more than {client.requests_per_minute} requests in a minute", client.client_id)
    return client


@app.exception_handler(Refused)
async def _refused(request: Request, refused: Refused) -> JSONResponse:
    return _error(refused.status, refused.code, refused.message)


@app.post("/oauth2/client/token")
async def token(request: Request) -> JSONResponse:
    """OAuth2 client credentials (RFC 6749 4.4), form-encoded: grant_type, client_id, client_secret, scope."""
    started = time.perf_counter()
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error(415, "err.request.bad", "send client credentials as application/x-www-form-urlencoded")
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        return _error(413, "err.request.bad", f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        form = await request.form(max_fields=10, max_part_size=MAX_FORM_BYTES)
    except Exception as exc:  # noqa: BLE001 - Starlette's own parse errors, answered in the spec's shape
        return _error(400, "err.request.bad", f"the form could not be read: {str(exc)[:200]}")
    claimed = str(form.get("client_id") or "")
    known = claimed if claimed in clients.settings().clients else None  # only a configured id names a client
    if form.get("grant_type") != "client_credentials":
        http_status, code, message = 400, "err.request.bad", "grant_type must be client_credentials"
        client = None
    else:
        client = clients.authenticate(claimed, str(form.get("client_secret") or ""))
        http_status, code, message = (200, "", "") if client else (401, "err.request.unauthorized",
                                                                   "unknown client or wrong secret")
    await run_in_threadpool(_audit, "/oauth2/client/token", known, "ISSUED" if client else "REFUSED", http_status,
                            started, {"reason": code or None})
    if client is None:
        return _error(http_status, code, message)
    scope = "registry.search"
    return JSONResponse({"access_token": signing.issue_token(client.client_id, scope), "token_type": "bearer",
                         "expires_in": str(signing.TOKEN_SECONDS), "scope": scope},
                        headers={"Cache-Control": "no-store"})


@app.get("/.well-known/jwks.json")
def jwks() -> dict[str, Any]:
    return signing.jwks()


@dataclass
class Answer:
    """What an endpoint answers (a JSON body, signed when it is an envelope) and what the audit trail keeps."""

    body: dict[str, Any]
    outcome: str
    details: dict[str, Any]
    signed: bool = True


Work = Callable[[psycopg2.extensions.cursor, Client, dict[str, Any], Any], Answer]


async def _answer(request: Request, endpoint: str, work: Work) -> JSONResponse:
    """Authenticate, read the envelope, check a required signature, do the work in one transaction, audit."""
    started = time.perf_counter()
    client_id: str | None = None
    sent: Any = None
    try:
        client = _client(request)
        client_id = client.client_id
        header, message, signature = search.envelope(await _body(request))
        sent = {"header": header, "message": message}
        if client.require_signed_requests or (signature and client.public_key):  # one we can check is checked
            verified = signing.verify(signature, header, message, client.public_key or "")
            if verified.sender_id != client.client_id:
                raise signing.SignatureRefused("err.signature.invalid", "the signature's sender is not this client")
        body = await run_in_threadpool(_work, work, client, header, message, endpoint, started)
    except (Refused, search.BadRequest, search.Forbidden, signing.SignatureRefused, status.NotFound,
            transactions.DuplicateMessage, psycopg2.errors.QueryCanceled) as exc:
        code, http_status = _status_of(exc)
        await run_in_threadpool(_audit, endpoint, client_id or getattr(exc, "client_id", None), "REFUSED",
                                http_status, started, {"reason": code, "message": str(exc)[:300], "request": sent})
        return _error(http_status, code, str(exc))
    except Exception:  # a fault of ours: logged here, answered in the spec's shape, audited, never a trace
        log.exception("registry API: %s failed", endpoint)
        await run_in_threadpool(_audit, endpoint, client_id, "FAILED", 500, started, {"reason": "err.service"})
        return _error(500, "err.service.unavailable", "the registry could not answer; try again later")
    return JSONResponse(body)


def _work(work: Work, client: Client, header: dict[str, Any], message: Any, endpoint: str,
          started: float) -> dict[str, Any]:
    """The work, its signed answer and its audit event in one transaction: none is kept without the others."""
    with transaction() as cur:
        answer = work(cur, client, header, message)
        body = answer.body
        if answer.signed:
            body = {"signature": signing.sign(body["header"], body.get("message")), **body}
        _audit_in(cur, endpoint, client.client_id, answer.outcome, 200, started,
                  {"message_id": header.get("message_id"), **answer.details})
        return body


def _status_of(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, Refused):
        return exc.code, exc.status
    if isinstance(exc, search.Forbidden):
        return exc.code, 403
    if isinstance(exc, signing.SignatureRefused):
        return exc.code, 401
    if isinstance(exc, status.NotFound):
        return exc.code, 404
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        return "err.request.timeout", 503
    return "err.request.bad", 400  # BadRequest, DuplicateMessage


def _envelope(header: dict[str, Any], message: dict[str, Any] | None) -> dict[str, Any]:
    return {"header": header, **({"message": message} if message is not None else {})}


def _search_details(checked: search.Checked, answered: search.Answered | None, correlation_id: str) -> dict[str, Any]:
    items = (answered.audit_items if answered and answered.audit_items
             else [{"search_request": item} for item in checked.items])  # not answered: each as sent
    return {"transaction_id": checked.transaction_id, "correlation_id": correlation_id, "items": items,
            "returned": sum(item.get("returned", 0) for item in items),
            **({"status": answered.header["status"], "status_reason_code": answered.header.get("status_reason_code")}
               if answered else {})}


def _sync_search(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: Any) -> Answer:
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the page and its total_count agree
    checked = search.check_search(client, clients.settings(), header, message)
    correlation_id = transactions.new_correlation_id()
    if checked.problem is None and transactions.seen(cur, client.client_id, header["message_id"]):
        checked.problem = ("rjct.message_id.duplicate", "this message_id was sent before: a message is answered once")
    answered = search.answer_search(cur, client, clients.settings(), header, checked, correlation_id)
    if checked.problem is None:  # what a status request can find, and a replay is refused by
        transactions.record(cur, correlation_id=correlation_id, client_id=client.client_id, action="sync-search",
                            header=header, message=transactions.minimal_request(header, message)["message"],
                            status=answered.header["status"], statuses=transactions.item_statuses(answered.message))
    return Answer(_envelope(answered.header, answered.message), answered.outcome,
                  _search_details(checked, answered, correlation_id))


def _async_search(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: Any) -> Answer:
    """Checked now (scope, shape), answered by the registry_api_search DAG, delivered to the client's callback."""
    _callback_required(client, "search asynchronously (use /registry/sync/search)")
    checked = search.check_search(client, clients.settings(), header, message)
    correlation_id = transactions.new_correlation_id()
    if checked.problem:
        return Answer(_ack("ERR", correlation_id, checked.problem[1]), "REJECTED",
                      _search_details(checked, None, correlation_id) | {"status_reason_code": checked.problem[0]},
                      signed=False)
    transactions.record(cur, correlation_id=correlation_id, client_id=client.client_id, action="search",
                        header=header, message=message, status="rcvd")
    return Answer(_ack("ACK", correlation_id), "ACKNOWLEDGED", _search_details(checked, None, correlation_id),
                  signed=False)


def _callback_required(client: Client, to: str) -> None:
    """Asynchronous answers go to the client's registered callback only: without one there is nowhere to send them."""
    if client.callback_url is None:
        raise search.Forbidden(f"this client has no registered callback to {to} with")


def _ack(ack_status: str, correlation_id: str, error: str | None = None) -> dict[str, Any]:
    return {"message": {"ack_status": ack_status, "timestamp": search.now_iso(), "correlation_id": correlation_id,
                        **({"error": {"code": "err.request.bad", "message": error[:999]}} if error else {})}}


def _sync_status(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: Any) -> Answer:
    correlation_id = transactions.new_correlation_id()
    reply_header, reply = status.answer(cur, client, header, message, correlation_id)
    return Answer(_envelope(reply_header, reply), "ANSWERED" if reply else "REJECTED",
                  {"transaction_id": message.get("transaction_id"), "correlation_id": correlation_id,
                   "txnstatus_request": message.get("txnstatus_request")})


def _async_status(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: Any) -> Answer:
    """Answered now, delivered to the client's callback (txn/on-status) by the registry_api_search DAG."""
    _callback_required(client, "ask asynchronously (use /registry/sync/txn/status)")
    correlation_id = transactions.new_correlation_id()
    reply_header, reply = status.answer(cur, client, header, message, correlation_id)
    response = _envelope(reply_header, reply)
    transactions.record(cur, correlation_id=correlation_id, client_id=client.client_id, action="txn-status",
                        header=header, message=message, status=reply_header["status"], response=response)
    return Answer(_ack("ACK", correlation_id), "ACKNOWLEDGED",
                  {"transaction_id": message.get("transaction_id"), "correlation_id": correlation_id,
                   "txnstatus_request": message.get("txnstatus_request")}, signed=False)


def _subscription_work(action: str) -> Work:
    """subscribe or unsubscribe: answered now, the answer delivered to the client's callback (on-<action>)."""

    def work(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: Any) -> Answer:
        _callback_required(client, action)
        correlation_id = transactions.new_correlation_id()
        if action == "subscribe":
            response = subscriptions.subscribe(cur, client, clients.settings(), header, message, correlation_id)
        else:
            response = subscriptions.unsubscribe(cur, client, header, message, correlation_id)
        transactions.record(cur, correlation_id=correlation_id, client_id=client.client_id, action=action,
                            header=header, message=message, status=response["header"]["status"], response=response)
        return Answer(_ack("ACK", correlation_id), "ACKNOWLEDGED",
                      {"transaction_id": message.get("transaction_id") if isinstance(message, dict) else None,
                       "correlation_id": correlation_id, "request": message, "answer": response.get("message")},
                      signed=False)

    return work


def _route(endpoint: str, work: Work) -> Callable[[Request], Any]:
    async def answer(request: Request) -> JSONResponse:
        return await _answer(request, endpoint, work)

    return answer


ENDPOINTS: dict[str, Work] = {
    "/registry/sync/search": _sync_search,
    "/registry/search": _async_search,
    "/registry/sync/txn/status": _sync_status,
    "/registry/txn/status": _async_status,
    "/registry/subscribe": _subscription_work("subscribe"),
    "/registry/unsubscribe": _subscription_work("unsubscribe"),
}
for _path, _work_of in ENDPOINTS.items():
    app.add_api_route(_path, _route(_path, _work_of), methods=["POST"])
