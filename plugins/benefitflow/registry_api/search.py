"""A DCI search message answered: the envelope checked, each `search_request` item answered on its own.

The header is checked first (a bad one rejects the whole message: header status `rjct` with the spec's
MsgHeaderStatusReasonCode); then each item is checked and run, and answered `succ` with one page of records or
`rjct` with a SearchStatusReasonCode. Anything that reaches outside the client's scope (a record type, query
type or attribute it may not read) refuses the whole request (HTTP 403): nothing is answered for it.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2.extensions

from benefitflow.registry_api import queries, records
from benefitflow.registry_api.clients import QUERY_TYPES, RECORD_TYPES, Client, Settings
from benefitflow.registry_api.signing import SERVICE_ID

VERSION = "1.0.0"
MAX_ID_LENGTH = 99  # transaction_id, correlation_id and reference_id: maxLength 99 in the spec
MAX_TEXT_LENGTH = 255  # message_id, sender_id, receiver_id: no limit in the spec; ours
LOCALE = re.compile(r"^[a-z]{3}$")
MAX_OFFSET = 100_000  # deeper pages cost the database a scan of everything before them
RECORD_TYPE_NAMES = {"Member": "Member", "SRPerson": "Member", "SR_Person": "Member", "Person": "Member",
                     "spdci:SR_Person": "Member", "Group": "Group", "spdci:Group": "Group", "Household": "Group"}


class BadRequest(ValueError):
    """A message that is not a DCI message (HTTP 400, err.request.bad): nothing in it is answered."""

    code = "err.request.bad"


class Forbidden(ValueError):
    """A request reaching outside the client's scope (HTTP 403, err.request.forbidden)."""

    code = "err.request.forbidden"


@dataclass
class Answered:
    """What the service answers, and what the audit trail keeps of it."""

    header: dict[str, Any]
    message: dict[str, Any] | None
    audit_items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.header["status"] == "rjct":
            return "REJECTED"
        return "ANSWERED" if all(item["status"] == "succ" for item in self.audit_items) else "PARTLY_ANSWERED"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_timestamp(value: Any) -> bool:
    """ISO 8601 with a time zone, as message_ts and timestamp must be."""
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def envelope(body: Any) -> tuple[dict[str, Any], Any, Any]:
    """The header, message and signature of a request body; BadRequest if it is not an envelope."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with header and message")
    unknown = set(body) - {"signature", "header", "message"}
    if unknown:
        raise BadRequest(f"unknown members of the envelope: {sorted(unknown)[:5]}")
    if not isinstance(body.get("header"), dict):
        raise BadRequest("header is missing or not an object")
    if "message" not in body:
        raise BadRequest("message is missing")
    return body["header"], body["message"], body.get("signature")


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"header.{name} must be text of 1 to {limit} characters")
    return value


def header_problem(header: dict[str, Any], action: str, items: int | None) -> tuple[str, str] | None:
    """(reason code, message) when the header rejects the message; BadRequest when it is not a header at all."""
    _text(header.get("message_id"), "message_id", MAX_TEXT_LENGTH)
    _text(header.get("sender_id"), "sender_id", MAX_TEXT_LENGTH)
    if "receiver_id" in header:
        _text(header["receiver_id"], "receiver_id", MAX_TEXT_LENGTH)
    if not isinstance(header.get("action"), str):
        raise BadRequest("header.action must be text")
    total = header.get("total_count")
    if isinstance(total, bool) or not isinstance(total, int):
        raise BadRequest("header.total_count must be a whole number")
    if header.get("is_msg_encrypted") not in (None, False):
        return "rjct.action.not_supported", "encrypted messages are not supported: send is_msg_encrypted false"
    if header.get("version", VERSION) != VERSION:
        return "rjct.version.invalid", f"version must be {VERSION}"
    if not is_timestamp(header.get("message_ts")):
        return "rjct.message_ts.invalid", "message_ts must be an ISO 8601 date and time with a time zone"
    if header["action"] != action:
        return "rjct.action.invalid", f"action must be {action} at this endpoint"
    if items is not None and total != items:
        return "rjct.total_count.invalid", f"total_count is {total} but the message holds {items} request(s)"
    return None


def reply_header(receiver_id: str, action: str, status: str, *, total: int = 0, completed: int = 0,
                 reason: tuple[str, str] | None = None) -> dict[str, Any]:
    header = {"version": VERSION, "message_id": str(uuid.uuid4()), "message_ts": now_iso(), "action": action,
              "status": status, "total_count": total, "completed_count": completed, "sender_id": SERVICE_ID,
              "receiver_id": receiver_id, "is_msg_encrypted": False}
    if reason:
        header["status_reason_code"], header["status_reason_message"] = reason[0], reason[1][:999]
    return header


@dataclass
class Checked:
    """A search message checked: its items planned (each compiled, or rejected), or the header's rejection."""

    transaction_id: str
    items: list[Any]
    problem: tuple[str, str] | None = None
    plans: list[ItemPlan] = field(default_factory=list)


def check_search(client: Client, settings: Settings, header: dict[str, Any], message: Any) -> Checked:
    """BadRequest if it is no search message, Forbidden if it reaches outside the client's scope."""
    if not isinstance(message, dict) or not isinstance(message.get("search_request"), list):
        raise BadRequest("message must be a SearchRequest: {transaction_id, search_request: [...]}")
    transaction_id = message.get("transaction_id")
    if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= MAX_ID_LENGTH:
        raise BadRequest(f"message.transaction_id must be text of 1 to {MAX_ID_LENGTH} characters")
    items = message["search_request"]
    problem = header_problem(header, "search", len(items))
    if problem is None and not items:
        problem = ("rjct.total_count.invalid", "search_request holds no request")
    if problem is None and len(items) > settings.max_batch:
        problem = ("rjct.total_count.limit_exceeded", f"at most {settings.max_batch} requests in one message")
    checked = Checked(str(transaction_id), items, problem)
    if problem is None:
        checked.plans = plan_items(items, client, settings)
    return checked


def answer_search(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, header: dict[str, Any],
                  checked: Checked, correlation_id: str) -> Answered:
    if checked.problem:
        return Answered(reply_header(client.client_id, "on-search", "rjct", total=len(checked.items),
                                     reason=checked.problem), None)
    responses, audit_items = [], []
    for plan in checked.plans:
        response, audited = plan.run(cur, client, settings)
        responses.append(response)
        audit_items.append(audited)
    completed = sum(1 for response in responses if response["status"] == "succ")
    reply = reply_header(client.client_id, "on-search", "succ", total=len(responses), completed=completed)
    if completed < len(responses):  # the header's status is the message's; each item says its own
        reply["status_reason_message"] = f"{completed}/{len(responses)} search requests answered"
    return Answered(reply, {"transaction_id": checked.transaction_id, "correlation_id": correlation_id,
                            "search_response": responses}, audit_items)


@dataclass
class ItemPlan:
    reference_id: str
    sent: Any  # the item as sent, for the audit trail
    locale: str
    rejection: tuple[str, str] | None = None
    record_type: str = "Member"
    query_type: str = ""
    compiled: queries.Compiled | None = None
    order: list[records.Order] = field(default_factory=list)
    page_size: int = 0
    page_number: int = 1

    def rejected(self, code: str, message: str) -> ItemPlan:
        self.rejection = (code, message)
        return self

    def run(self, cur: psycopg2.extensions.cursor, client: Client,
            settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
        started = time.perf_counter()
        audited: dict[str, Any] = {"reference_id": self.reference_id, "search_request": self.sent}
        response: dict[str, Any] = {"reference_id": self.reference_id, "timestamp": now_iso(), "locale": self.locale}
        if self.rejection:
            response |= {"status": "rjct", "status_reason_code": self.rejection[0],
                         "status_reason_message": self.rejection[1][:999]}
            return response, audited | {"status": "rjct", "reason": self.rejection[0], "returned": 0}
        assert self.compiled is not None
        fetch = records.groups_page if self.record_type == "Group" else records.members_page
        page = fetch(cur, client, settings, self.compiled.condition, self.order, self.page_size,
                     (self.page_number - 1) * self.page_size)
        response |= {"status": "succ",
                     "data": {"version": VERSION, "reg_type": "ns:org:RegistryType:Social",
                              "reg_record_type": self.record_type, "reg_records": page.records},
                     "pagination": {"page_size": self.page_size, "page_number": self.page_number,
                                    "total_count": page.total_count}}
        audited["filter"] = self.compiled.document  # what the query compiled to, beside the query as sent
        return response, audited | {"status": "succ", "record_type": self.record_type, "returned": len(page.ids),
                                    "total_count": page.total_count, "ids": page.ids,
                                    **({"households": page.households} if page.households else {}),
                                    "milliseconds": round((time.perf_counter() - started) * 1000, 1)}


def plan_items(items: list[Any], client: Client, settings: Settings) -> list[ItemPlan]:
    """Each item checked and compiled; Forbidden if any reaches outside the client's scope.

    One answer holds at most the client's max_page_size records over all its items: an item without
    pagination gets its share, and one that asks for more than what is left is rejected."""
    seen: set[str] = set()
    plans = []
    budget = Budget(client.max_page_size, max(1, client.max_page_size // max(1, len(items))))
    for index, item in enumerate(items):
        plan = _plan(item, index, client, settings, budget)
        if plan.rejection is None and plan.reference_id in seen:
            plan.rejected("rjct.reference_id.duplicate", f"reference_id {plan.reference_id[:99]} is used twice")
        seen.add(plan.reference_id)
        plans.append(plan)
    return plans


@dataclass
class Budget:
    """Records an answer may still hold, and an item's share when it does not say."""

    left: int
    share: int


def _plan(item: Any, index: int, client: Client, settings: Settings, budget: Budget) -> ItemPlan:
    if not isinstance(item, dict):
        return ItemPlan(f"#{index + 1}", item, "eng").rejected("rjct.search_criteria.invalid",
                                                               "each search_request item is an object")
    reference_id = item.get("reference_id")
    locale = item.get("locale", "eng")
    plan = ItemPlan(str(reference_id)[:MAX_ID_LENGTH] if reference_id is not None else f"#{index + 1}", item,
                    locale if isinstance(locale, str) and LOCALE.match(locale) else "eng")
    if not isinstance(reference_id, str) or not 0 < len(reference_id) <= MAX_ID_LENGTH:
        return plan.rejected("rjct.reference_id.invalid", f"reference_id must be text of 1 to {MAX_ID_LENGTH} "
                                                          "characters")
    if not is_timestamp(item.get("timestamp")):
        return plan.rejected("rjct.timestamp.invalid", "timestamp must be an ISO 8601 date and time with a time zone")
    if "locale" in item and not (isinstance(locale, str) and LOCALE.match(locale)):
        return plan.rejected("rjct.search_criteria.invalid", "locale must be an ISO 639-3 code (three small letters)")
    criteria = item.get("search_criteria")
    if not isinstance(criteria, dict) or "query_type" not in criteria or "query" not in criteria:
        return plan.rejected("rjct.search_criteria.invalid", "search_criteria needs query_type and query")
    if criteria.get("version", VERSION) != VERSION:
        return plan.rejected("rjct.search_criteria.invalid", f"search_criteria.version must be {VERSION}")
    record_type = _record_type(criteria)
    if record_type is None:
        return plan.rejected("rjct.search_criteria.invalid",
                             f"response_entity / reg_record_type must be one of {', '.join(RECORD_TYPES)}")
    if record_type not in client.record_types:
        raise Forbidden(f"record type {record_type} is not in this client's scope")
    plan.record_type = record_type
    if criteria["query_type"] not in QUERY_TYPES:
        return plan.rejected("rjct.search_criteria.invalid",
                             f"query_type must be one of {', '.join(QUERY_TYPES)}")
    plan.query_type = criteria["query_type"]
    try:
        plan.compiled = queries.compile_query(plan.query_type, criteria["query"], client, settings,
                                              records.search_fields())
    except queries.QueryRefused as exc:
        if exc.forbidden:
            raise Forbidden(str(exc)) from exc
        return plan.rejected(exc.reason_code, str(exc))
    return _paged(_sorted(plan, criteria.get("sort"), client), criteria.get("pagination"), client, budget)


def _record_type(criteria: dict[str, Any]) -> str | None:
    named = [criteria[key] for key in ("response_entity", "reg_record_type") if key in criteria]
    types = {RECORD_TYPE_NAMES.get(name) if isinstance(name, str) else None for name in named}
    if not named:
        return "Member"
    return types.pop() if len(types) == 1 else None


def _sorted(plan: ItemPlan, sort: Any, client: Client) -> ItemPlan:
    if plan.rejection or sort is None:
        return plan
    allowed = records.sort_fields(plan.record_type, client)
    if not isinstance(sort, list) or len(sort) > 5:
        return plan.rejected("rjct.sort.invalid", "sort is a list of at most 5 {attribute_name, sort_order}")
    for entry in sort:
        if not isinstance(entry, dict) or set(entry) - {"attribute_name", "sort_order"} \
                or entry.get("attribute_name") not in allowed or entry.get("sort_order", "asc") not in ("asc", "desc"):
            return plan.rejected("rjct.sort.invalid", f"sort by one of {', '.join(sorted(allowed))}, asc or desc")
        plan.order.append(records.Order(entry["attribute_name"], entry.get("sort_order") == "desc"))
    return plan


def _paged(plan: ItemPlan, pagination: Any, client: Client, budget: Budget) -> ItemPlan:
    if plan.rejection:
        return plan
    size, number = min(budget.share, budget.left), 1
    if pagination is not None:
        if not isinstance(pagination, dict) or "page_size" not in pagination:
            return plan.rejected("rjct.pagination.invalid", "pagination is {page_size, page_number}")
        size, number = pagination["page_size"], pagination.get("page_number", 1)
        if not _whole(size) or not 1 <= size <= client.max_page_size:
            return plan.rejected("rjct.pagination.invalid", f"page_size must be 1 to {client.max_page_size}")
        if not _whole(number) or number < 1:
            return plan.rejected("rjct.pagination.invalid", "page_number counts from 1")
    if size > budget.left or size < 1:
        return plan.rejected("rjct.pagination.invalid", f"one answer holds at most {client.max_page_size} records "
                                                        f"for this client; {budget.left} are left for this item")
    if (number - 1) * size >= MAX_OFFSET:
        return plan.rejected("rjct.search.too_many_records_found",
                             f"pages reach record {MAX_OFFSET:,} at most: narrow the query or sort it")
    budget.left -= int(size)
    plan.page_size, plan.page_number = int(size), int(number)
    return plan


def _whole(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and float(value).is_integer()
