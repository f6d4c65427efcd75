"""Transaction status (`/registry/sync/txn/status`, `/registry/txn/status`): where a client's search stands.

A TxnStatusRequest names one of the client's own searches by transaction_id, correlation_id or a list of
reference_ids; the answer is a TxnStatusResponse with each item's status (never its records: those went to the
client once, with the answer).
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions

from benefitflow.registry_api import search, transactions
from benefitflow.registry_api.clients import Client

TXN_TYPES = ("search",)
MAX_REFERENCES = 100


class NotFound(LookupError):
    code = "err.request.not_found"


def check(header: dict[str, Any], message: Any) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The txnstatus_request of a message and the header's problem, if any; BadRequest if it is none."""
    if not isinstance(message, dict) or not isinstance(message.get("txnstatus_request"), dict):
        raise search.BadRequest("message must be a TxnStatusRequest: {transaction_id, txnstatus_request: {...}}")
    transaction_id = message.get("transaction_id")
    if not isinstance(transaction_id, str) or not 0 < len(transaction_id) <= search.MAX_ID_LENGTH:
        raise search.BadRequest(f"message.transaction_id must be text of 1 to {search.MAX_ID_LENGTH} characters")
    request = message["txnstatus_request"]
    if not isinstance(request.get("reference_id"), str) or not request["reference_id"]:
        raise search.BadRequest("txnstatus_request.reference_id must be text")
    if request.get("txn_type") not in TXN_TYPES:
        raise search.BadRequest(f"txnstatus_request.txn_type must be one of {', '.join(TXN_TYPES)}")
    if request.get("attribute_type") not in transactions.ATTRIBUTE_TYPES:
        raise search.BadRequest(f"txnstatus_request.attribute_type must be one of "
                                f"{', '.join(transactions.ATTRIBUTE_TYPES)}")
    value = request.get("attribute_value")
    if request["attribute_type"] == "reference_id_list":
        if not isinstance(value, list) or not 0 < len(value) <= MAX_REFERENCES \
                or not all(isinstance(item, str) and 0 < len(item) <= search.MAX_ID_LENGTH for item in value):
            raise search.BadRequest(f"attribute_value must be a list of 1 to {MAX_REFERENCES} reference ids")
    elif not isinstance(value, str) or not 0 < len(value) <= search.MAX_ID_LENGTH:
        raise search.BadRequest(f"attribute_value must be text of 1 to {search.MAX_ID_LENGTH} characters")
    return request, search.header_problem(header, "txn-status", None)


def answer(cur: psycopg2.extensions.cursor, client: Client, header: dict[str, Any], message: dict[str, Any],
           correlation_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(reply header, TxnStatusResponse or None when the header rejects the message); NotFound if no such search."""
    request, problem = check(header, message)
    if problem:
        return search.reply_header(client.client_id, "txn-on-status", "rjct", total=1, reason=problem), None
    found = transactions.lookup(cur, client.client_id, request["attribute_type"], request["attribute_value"])
    if found is None:
        raise NotFound(f"no search of this client has {request['attribute_type']} as given")
    transaction_id, search_correlation_id, status, statuses = found
    return (search.reply_header(client.client_id, "txn-on-status", "succ", total=1, completed=1), {
        "transaction_id": message["transaction_id"], "correlation_id": correlation_id,
        "txnstatus_response": {"txn_type": "search", "txn_status": {
            "transaction_id": transaction_id, "correlation_id": search_correlation_id, "status": status,
            "search_response": statuses.get("search_response", [])}}})
