"""The one filter language: JSON criteria compiled to SQL with whitelisted fields and literal values.

    {"all": [{"field": "age", "op": ">=", "value": 18},
             {"any": [{"field": "region", "op": "in", "value": ["North", "East"]},
                      {"field": "disability", "op": "is null"}]}]}

Groups are `all` / `any` (a list of conditions or groups) and `not` (one condition or group).
A condition names a field from the catalogue it is compiled against (core columns and the
variables of a JSON Schema), an operator allowed for the field's type, and a value of that
type. Nothing from the document is pasted into SQL: fields map to expressions we wrote, and
values become quoted literals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg2 import sql

from benefitflow.core.errors import UserError

MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_STRING = 1000
MAX_LIST = 10_000
MAX_DIGITS = 30

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": ("=", "!=", "in", "not in", "contains", "starts with", "is null", "is not null"),
    "number": (*COMPARISONS, "in", "not in", "is null", "is not null"),
    "integer": (*COMPARISONS, "in", "not in", "is null", "is not null"),
    "date": (*COMPARISONS, "is null", "is not null"),
    "boolean": ("=", "!=", "is null", "is not null"),
}
SQL_TYPES = {"string": "text", "number": "numeric", "integer": "numeric", "date": "date", "boolean": "boolean"}


class FilterError(UserError):
    """A filter that does not compile; the message says where (a path like all[1].any[0])."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    expression: sql.Composable
    enum: tuple[Any, ...] | None = None
    # A comparison (=, !=, <, <=, >, >=) with a literal written on another column, so an index serves it: the
    # same rows as `expression <op> literal`, e.g. age on dates of birth (age_field).
    compare: Callable[[str, sql.Composable], sql.Composable] | None = None


def core_field(name: str, type_: str, column: str | None = None, table_alias: str | None = None) -> Field:
    identifier = sql.Identifier(table_alias, column or name) if table_alias else sql.Identifier(column or name)
    return Field(name, type_, identifier)


def age_field(dob_column: str = "dob", table_alias: str | None = None) -> Field:
    """Age in whole years today; a comparison becomes a range of dates of birth (no age() computed per row, and
    an index on them serves it), the same rows for every date of birth up to today (the registry refuses later
    ones; age() would call someone born tomorrow 0)."""
    dob = sql.Identifier(table_alias, dob_column) if table_alias else sql.Identifier(dob_column)

    def born_by(years: sql.Composable, more: int = 0) -> sql.Composable:
        """The latest date of birth of someone `years` (+ more) old today."""
        return sql.SQL("(current_date - make_interval(years => ({})::integer + {}))::date").format(
            years, sql.Literal(more))

    def compare(op: str, years: sql.Composable) -> sql.Composable:
        at_least, older_than = (sql.SQL("({} <= {})").format(dob, born_by(years, more))
                                for more in (0, 1))
        younger_than = sql.SQL("(NOT {})").format(at_least)
        exactly = sql.SQL("({} AND NOT {})").format(at_least, older_than)
        return {">=": at_least, ">": older_than, "<": younger_than,
                "<=": sql.SQL("(NOT {})").format(older_than), "=": exactly,
                "!=": sql.SQL("(NOT {})").format(exactly)}[op]

    return Field("age", "integer", sql.SQL("date_part('year', age(current_date, {}))::integer").format(dob),
                 compare=compare)


def schema_fields(json_schema: Mapping[str, Any], column: str = "attributes",
                  table_alias: str | None = None) -> dict[str, Field]:
    """Fields for the variables a JSON Schema declares, read from a jsonb column."""
    source = sql.Identifier(table_alias, column) if table_alias else sql.Identifier(column)
    fields: dict[str, Field] = {}
    for name, definition in (json_schema.get("properties") or {}).items():
        type_ = property_type(definition)
        text = sql.SQL("({} ->> {})").format(source, sql.Literal(name))
        expression = text if type_ == "string" else sql.SQL("{}::{}").format(text, sql.SQL(SQL_TYPES[type_]))
        enum = tuple(definition["enum"]) if "enum" in definition else None
        fields[name] = Field(name, type_, expression, enum)
    return fields


def property_type(definition: Mapping[str, Any]) -> str:
    """The filter type of a JSON Schema property: string, date, integer, number or boolean."""
    declared = definition.get("type", "string")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), "string")
    if declared == "string" and definition.get("format") == "date":
        return "date"
    if declared not in OPERATORS_BY_TYPE:
        raise FilterError(f"schema type {declared!r} cannot be filtered on; use string, integer, number or boolean")
    return declared


def compile_filter(document: Any, fields: Mapping[str, Field]) -> sql.Composable:
    """SQL boolean expression for `document`; an empty document (None or {}) is TRUE."""
    if document is None or document == {}:
        return sql.SQL("TRUE")
    compiler = _Compiler(fields)
    return compiler.node(document, "filter", 0)


class _Compiler:
    def __init__(self, fields: Mapping[str, Field]) -> None:
        self.fields = fields
        self.conditions = 0

    def node(self, node: Any, path: str, depth: int) -> sql.Composable:
        if depth > MAX_DEPTH:
            raise FilterError(f"{path}: groups are nested more than {MAX_DEPTH} deep")
        if not isinstance(node, dict):
            raise FilterError(f"{path}: expected an object, got {type(node).__name__}")
        groups = [key for key in ("all", "any", "not") if key in node]
        if groups:
            if len(node) != 1:
                raise FilterError(f"{path}: a group has exactly one key (all, any or not), got {sorted(node)}")
            return self.group(groups[0], node[groups[0]], path, depth)
        return self.condition(node, path)

    def group(self, kind: str, members: Any, path: str, depth: int) -> sql.Composable:
        if kind == "not":
            return sql.SQL("(NOT {})").format(self.node(members, f"{path}.not", depth + 1))
        if not isinstance(members, list) or not members:
            raise FilterError(f"{path}.{kind}: expected a non-empty list of conditions")
        parts = [self.node(member, f"{path}.{kind}[{i}]", depth + 1) for i, member in enumerate(members)]
        joiner = sql.SQL(" AND " if kind == "all" else " OR ")
        return sql.SQL("({})").format(joiner.join(parts))

    def condition(self, node: dict[str, Any], path: str) -> sql.Composable:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise FilterError(f"{path}: more than {MAX_CONDITIONS} conditions")
        unknown_keys = set(node) - {"field", "op", "value"}
        if unknown_keys or "field" not in node or "op" not in node:
            raise FilterError(f"{path}: a condition is {{field, op, value}}, got keys {sorted(node)}")
        name, op = node["field"], node["op"]
        if not isinstance(name, str) or name not in self.fields:
            known = ", ".join(sorted(self.fields))
            raise FilterError(f"{path}: unknown field {str(name)[:80]!r} (known fields: {known})")
        field = self.fields[name]
        value_path = f"{path}.value (field {name!r})"
        allowed = OPERATORS_BY_TYPE[field.type]
        if op not in allowed:
            raise FilterError(f"{path}: operator {str(op)[:20]!r} is not allowed for {field.type} field "
                              f"{name!r} (allowed: {', '.join(allowed)})")
        if op in ("is null", "is not null"):
            if "value" in node:
                raise FilterError(f"{path}: {op!r} takes no value")
            return sql.SQL("({} IS NULL)" if op == "is null" else "({} IS NOT NULL)").format(field.expression)
        if "value" not in node:
            raise FilterError(f"{path}: operator {op!r} needs a value")
        value = node["value"]
        if op in ("in", "not in"):
            if not isinstance(value, list) or not value or len(value) > MAX_LIST:
                raise FilterError(f"{path}: {op!r} needs a list of 1 to {MAX_LIST} values")
            literals = [self.literal(field, item, f"{path}.value[{i}] (field {name!r})")
                        for i, item in enumerate(value)]
            template = "({} IN ({}))" if op == "in" else "({} NOT IN ({}))"
            return sql.SQL(template).format(field.expression, sql.SQL(", ").join(literals))
        if op in ("contains", "starts with"):
            text = self.text(value, value_path)
            pattern = _escape_like(text)
            pattern = f"%{pattern}%" if op == "contains" else f"{pattern}%"
            return sql.SQL("({} ILIKE {} ESCAPE '\\')").format(field.expression, sql.Literal(pattern))
        literal = self.literal(field, value, value_path)
        if field.compare is not None:
            return field.compare(op, literal)
        operator = sql.SQL("<>" if op == "!=" else op)
        return sql.SQL("({} {} {})").format(field.expression, operator, literal)

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise FilterError(f"{path}: expected text, got {type(value).__name__}")
        if len(value) > MAX_STRING:
            raise FilterError(f"{path}: text longer than {MAX_STRING} characters")
        if "\x00" in value:
            raise FilterError(f"{path}: text contains a NUL character")
        return value

    def literal(self, field: Field, value: Any, path: str) -> sql.Composable:
        if field.type == "string":
            text = self.text(value, path)
            if field.enum is not None and text not in field.enum:
                raise FilterError(f"{path}: {text[:80]!r} is not one of {list(field.enum)} for {field.name!r}")
            return sql.Literal(text)
        if field.type in ("number", "integer"):
            return sql.SQL("{}::numeric").format(sql.Literal(str(_number(value, field.type, path))))
        if field.type == "date":
            if not isinstance(value, str):
                raise FilterError(f"{path}: expected a date as YYYY-MM-DD, got {type(value).__name__}")
            try:
                return sql.SQL("{}::date").format(sql.Literal(date.fromisoformat(value).isoformat()))
            except ValueError as exc:
                raise FilterError(f"{path}: {value[:40]!r} is not a date (YYYY-MM-DD)") from exc
        if not isinstance(value, bool):
            raise FilterError(f"{path}: expected true or false, got {type(value).__name__}")
        return sql.Literal(value)


def _number(value: Any, type_: str, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FilterError(f"{path}: expected a number, got {type(value).__name__}")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise FilterError(f"{path}: {str(value)[:40]!r} is not a number") from exc
    if not number.is_finite() or len(number.as_tuple().digits) > MAX_DIGITS:
        raise FilterError(f"{path}: number out of range (at most {MAX_DIGITS} digits)")
    if type_ == "integer" and number != number.to_integral_value():
        raise FilterError(f"{path}: expected a whole number, got {value}")
    return number


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
