"""The three DCI query types, turned into the platform's one filter language (benefitflow.core.filters).

Nothing of a request reaches SQL but through the filter compiler: attribute names must be fields the client
may read (so a client cannot learn a value it may not see by searching on it), and values become literals.

- `idtype-value`: {"type": "UIN", "value": "…"}: an identifier type of the configuration, equal to the value.
- `predicate`: [{"seq_num": 1, "expression1": {"attribute_name", "operator", "attribute_value"},
  "condition": "and|or|not", "expression2": {…}}, …]: each item is expression1, or expression1 <condition>
  expression2 ("not": expression1 and not expression2; alone, not expression1); items hold together (and),
  in seq_num order. Operators gt lt eq ge le in.
- `expression`: {"type": …, "value": {"expression": {"collection": "Member|Group", "query": {…}}}} with a
  whitelisted subset of the Mongo-like syntax: $and, $or (lists), and {"field": {"$eq|$ne|$lt|$lte|$gt|$gte|$in":
  value}} (a bare value means $eq).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg2 import sql

from benefitflow.core import filters
from benefitflow.core.filters import Field, FilterError
from benefitflow.registry_api.clients import Client, Settings

PREDICATE_OPERATORS = {"gt": ">", "lt": "<", "eq": "=", "ge": ">=", "le": "<=", "in": "in"}
EXPRESSION_OPERATORS = {"$eq": "=", "$ne": "!=", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">=", "$in": "in"}
MAX_PREDICATES = 50
UUID_FIELDS = ("individual_id",)  # compared as uuid (its index), so a value must be one
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_DEPTH = 6


class QueryRefused(ValueError):
    """A query the service will not run: `forbidden` when it reaches outside the client's scope (HTTP 403),
    otherwise a malformed query (the item is rejected with rjct.search_criteria.invalid)."""

    def __init__(self, message: str, *, forbidden: bool = False, reason_code: str = "rjct.search_criteria.invalid"):
        super().__init__(message)
        self.forbidden = forbidden
        self.reason_code = reason_code


@dataclass(frozen=True)
class Compiled:
    condition: sql.Composable
    document: Any  # the filter-language document it was compiled from (audited beside the query as sent)


def compile_query(query_type: str, query: Any, client: Client, settings: Settings,
                  fields: Mapping[str, Field]) -> Compiled:
    if query_type not in client.query_types:
        raise QueryRefused(f"query type {query_type} is not in this client's scope", forbidden=True)
    if query_type == "idtype-value":
        document = _idtype_value(query, settings)
    elif query_type == "predicate":
        document = _predicate(query)
    else:
        document = _expression(query)
    readable = {name: field for name, field in fields.items() if client.may_read(name)}
    for name in _fields_named(document):
        if name not in fields:
            raise QueryRefused(f"unknown attribute {name[:80]!r} (known: {', '.join(sorted(readable))})")
        if name not in readable:
            raise QueryRefused(f"attribute {name!r} is not in this client's scope", forbidden=True)
    typed = _typed(document, fields)
    try:
        return Compiled(filters.compile_filter(typed, readable), typed)
    except FilterError as exc:
        raise QueryRefused(str(exc), reason_code="rjct.filter.invalid") from exc


def _idtype_value(query: Any, settings: Settings) -> dict[str, Any]:
    if not isinstance(query, dict) or set(query) - {"type", "value"} or "type" not in query or "value" not in query:
        raise QueryRefused("an idtype-value query is {\"type\": <identifier type>, \"value\": <identifier>}")
    id_type, value = query["type"], query["value"]
    if id_type not in settings.identifier_types:
        raise QueryRefused(f"unknown identifier type {str(id_type)[:40]!r} "
                           f"(known: {', '.join(settings.identifier_types)})")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise QueryRefused("an identifier value is a string or a whole number")
    return {"field": settings.identifier_types[id_type], "op": "=", "value": str(value)}


def _predicate(query: Any) -> dict[str, Any]:
    if not isinstance(query, list) or not query or len(query) > MAX_PREDICATES:
        raise QueryRefused(f"a predicate query is a list of 1 to {MAX_PREDICATES} expressions")
    items = []
    for index, item in enumerate(query):
        if not isinstance(item, dict) or "expression1" not in item:
            raise QueryRefused(f"predicate[{index}]: each item has expression1")
        seq = item.get("seq_num", index)
        if isinstance(seq, bool) or not isinstance(seq, int | float):
            raise QueryRefused(f"predicate[{index}].seq_num must be a number")
        items.append((seq, index, _predicate_item(item, f"predicate[{index}]")))
    return {"all": [document for _, _, document in sorted(items, key=lambda entry: entry[:2])]}


def _predicate_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(item) - {"seq_num", "expression1", "condition", "expression2"}
    if unknown:
        raise QueryRefused(f"{where}: unknown keys {sorted(unknown)}")
    first = _predicate_condition(item["expression1"], f"{where}.expression1")
    condition = item.get("condition")
    if "expression2" not in item:
        if condition == "not":
            return {"not": first}
        if condition not in (None, "and", "or"):
            raise QueryRefused(f"{where}.condition must be and, or or not")
        return first
    second = _predicate_condition(item["expression2"], f"{where}.expression2")
    if condition == "and":
        return {"all": [first, second]}
    if condition == "or":
        return {"any": [first, second]}
    if condition == "not":
        return {"all": [first, {"not": second}]}
    raise QueryRefused(f"{where}.condition must be and, or or not when expression2 is given")


def _predicate_condition(expression: Any, where: str) -> dict[str, Any]:
    if not isinstance(expression, dict) or set(expression) != {"attribute_name", "operator", "attribute_value"}:
        raise QueryRefused(f"{where} is {{attribute_name, operator, attribute_value}}")
    operator = expression["operator"]
    if operator not in PREDICATE_OPERATORS:
        raise QueryRefused(f"{where}.operator must be one of {', '.join(PREDICATE_OPERATORS)}")
    return _condition(expression["attribute_name"], PREDICATE_OPERATORS[operator], expression["attribute_value"],
                      where)


def _expression(query: Any) -> dict[str, Any]:
    try:
        inner = query["value"]["expression"]
        body = inner["query"]
    except (TypeError, KeyError) as exc:
        raise QueryRefused("an expression query is {\"type\": …, \"value\": {\"expression\": "
                           "{\"collection\": …, \"query\": {…}}}}") from exc
    if inner.get("collection") not in (None, "Member", "Group"):
        raise QueryRefused("expression.collection must be Member or Group")
    return _expression_node(body, "expression.query", 0)


def _expression_node(node: Any, where: str, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise QueryRefused(f"{where}: nested more than {MAX_DEPTH} deep")
    if not isinstance(node, dict) or not node:
        raise QueryRefused(f"{where}: expected an object")
    parts = []
    for key, value in node.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise QueryRefused(f"{where}.{key} must be a non-empty list")
            members = [_expression_node(member, f"{where}.{key}[{i}]", depth + 1) for i, member in enumerate(value)]
            parts.append({"all" if key == "$and" else "any": members})
        elif key.startswith("$"):
            raise QueryRefused(f"{where}: operator {key[:20]!r} is not supported (use $and, $or, "
                               f"{', '.join(EXPRESSION_OPERATORS)})")
        elif isinstance(value, dict):
            if not value:
                raise QueryRefused(f"{where}.{key[:80]}: expected an operator")
            for operator, operand in value.items():
                if operator not in EXPRESSION_OPERATORS:
                    raise QueryRefused(f"{where}.{key[:80]}: operator {str(operator)[:20]!r} is not supported "
                                       f"(use {', '.join(EXPRESSION_OPERATORS)})")
                parts.append(_condition(key, EXPRESSION_OPERATORS[operator], operand, f"{where}.{key[:80]}"))
        else:
            parts.append(_condition(key, "=", value, f"{where}.{key[:80]}"))
    return parts[0] if len(parts) == 1 else {"all": parts}


def _condition(name: Any, op: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise QueryRefused(f"{where}: the attribute name must be text")
    if op == "in" and not isinstance(value, list):
        raise QueryRefused(f"{where}: in takes a list of values")
    return {"field": name, "op": op, "value": value}


def _fields_named(document: Any) -> list[str]:
    if "field" in document:
        return [document["field"]]
    members = document.get("all") or document.get("any") or [document["not"]]
    return [name for member in members for name in _fields_named(member)]


def _typed(document: dict[str, Any], fields: Mapping[str, Field]) -> dict[str, Any]:
    """Values as the field's type: DCI sends numbers and booleans as text too ("attribute_value": "25")."""
    if "field" not in document:
        return {key: ([_typed(member, fields) for member in value] if isinstance(value, list)
                      else _typed(value, fields)) for key, value in document.items()}
    field_type = "uuid" if document["field"] in UUID_FIELDS else fields[document["field"]].type
    value = document["value"]
    coerced = [_value(item, field_type) for item in value] if isinstance(value, list) else _value(value, field_type)
    return {**document, "value": coerced}


def _value(value: Any, field_type: str) -> Any:
    if field_type == "uuid":
        if not isinstance(value, str) or not UUID.match(value):
            raise QueryRefused(f"{str(value)[:40]!r} is not a benefitflow individual id (a UUID)")
        return value
    if not isinstance(value, str):
        return value
    text = value.strip()
    if field_type in ("integer", "number"):
        try:
            return int(text) if field_type == "integer" or text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return value  # the compiler names the value it cannot take
    if field_type == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if field_type == "date" and "T" in text:
        try:
            return date.fromisoformat(text.split("T", 1)[0]).isoformat()
        except ValueError:
            return value
    return value
