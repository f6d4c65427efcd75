"""Benefit plans: the document, its validation, and the fields a plan's criteria may name.

A plan document (see `plan.schema.json`) is checked in two passes: its shape against the
JSON Schema (every problem named by its path), then what a schema cannot say: real and
ordered dates, a beneficiary data schema that is itself a valid JSON Schema with safe,
filterable variables that do not shadow registry fields, and criteria (default criteria,
entitlement conditions) that compile against the fields they will be evaluated on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import filters
from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.core.filters import Field, FilterError
from benefitflow.registry import registry_export
from benefitflow.registry import schema as registry_schema

PLAN_SCHEMA_FILE = Path(__file__).with_name("plan.schema.json")
PLAN_ASSET = "benefitflow://programmes/plans"
STATUSES = ("POTENTIAL", "ACTIVE", "SUSPENDED", "GRADUATED")
ENROLMENT_STATUSES = ("POTENTIAL", "ACTIVE")
BENEFICIARY = "b"
RESERVED_VARIABLES = ("status", "beneficiary_id", "plan_code", "attributes")


class PlanError(RequestError):
    """A plan document, or a request about a plan, that cannot be accepted (the message is for the maker)."""


@dataclass(frozen=True)
class Plan:
    document: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.document["code"])

    @property
    def type(self) -> str:
        return str(self.document["type"])

    @property
    def variables_schema(self) -> dict[str, Any]:
        return dict(self.document.get("beneficiary_data_schema") or {})

    @property
    def max_beneficiaries(self) -> int | None:
        return self.document.get("max_beneficiaries")

    def default_criteria(self, status: str) -> dict[str, Any] | None:
        return (self.document.get("default_criteria") or {}).get(status)

    def is_current_on(self, day: date) -> bool:
        valid_to = self.document.get("valid_to")
        return date.fromisoformat(self.document["valid_from"]) <= day and (
            valid_to is None or day <= date.fromisoformat(valid_to))


@cache
def _plan_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(PLAN_SCHEMA_FILE.read_text()))


def validate_document(document: Any) -> Plan:
    """The plan, or PlanError listing every problem found."""
    if not isinstance(document, dict):
        raise PlanError("a plan document is a JSON object (or a YAML mapping)")
    shape = sorted(_plan_validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    if shape:
        raise PlanError("; ".join(_describe(error) for error in shape[:10]))
    plan = Plan(document)
    problems = _date_problems(document) + _variables_problems(plan.variables_schema)
    if not problems:
        problems = _criteria_problems(plan)
    if problems:
        raise PlanError("; ".join(problems))
    return plan


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "the document"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message}"
    if error.validator == "pattern" and "amount" in str(error.schema.get("description", "")):
        return f"{where}: {error.instance!r} is not an amount (a non-negative decimal string such as \"1500.00\")"
    if error.validator == "anyOf" and where.endswith("entitlement"):
        return f"{where}: needs at least one amount: fixed_amount, per_member or top_ups"
    return f"{where}: {error.message}"


def _date_problems(document: Mapping[str, Any]) -> list[str]:
    problems, days = [], {}
    for key in ("valid_from", "valid_to"):
        if document.get(key) is None:
            continue
        try:
            days[key] = date.fromisoformat(document[key])
        except ValueError:
            problems.append(f"{key}: {document[key]!r} is not a real date (YYYY-MM-DD)")
    if len(days) == 2 and days["valid_to"] < days["valid_from"]:
        problems.append(f"valid_to {days['valid_to']} is before valid_from {days['valid_from']}")
    return problems


def _variables_problems(variables: Mapping[str, Any]) -> list[str]:
    if not variables:
        return []
    try:
        jsonschema.Draft202012Validator.check_schema(variables)
    except jsonschema.SchemaError as exc:
        return [f"beneficiary_data_schema: not a valid JSON Schema ({exc.message})"]
    problems = []
    registry_fields = set(registry_export.fields())
    for name, definition in (variables.get("properties") or {}).items():
        if not registry_schema.NAME.match(name):
            problems.append(f"beneficiary_data_schema: variable name {name!r} must match "
                            f"{registry_schema.NAME.pattern}")
        elif name in RESERVED_VARIABLES or name in registry_fields:
            problems.append(f"beneficiary_data_schema: {name!r} is already a registry or beneficiary field")
        else:
            try:
                filters.property_type(definition)
            except FilterError as exc:
                problems.append(f"beneficiary_data_schema: variable {name!r}: {exc}")
    return problems


def _criteria_problems(plan: Plan) -> list[str]:
    problems = []
    for status, criteria in (plan.document.get("default_criteria") or {}).items():
        problems += _compile_problem(f"default_criteria.{status}", criteria, enrolment_fields())
    entitlement = plan.document.get("entitlement") or {}
    if "criteria" in (entitlement.get("per_member") or {}):
        problems += _compile_problem("entitlement.per_member.criteria", entitlement["per_member"]["criteria"],
                                     registry_export.fields())
    for index, top_up in enumerate(entitlement.get("top_ups") or []):
        problems += _compile_problem(f"entitlement.top_ups[{index}].criteria", top_up["criteria"],
                                     beneficiary_fields(plan))
    return problems


def _compile_problem(where: str, criteria: Any, fields: Mapping[str, Field]) -> list[str]:
    try:
        filters.compile_filter(criteria, fields)
    except FilterError as exc:
        return [f"{where}: {exc}"]
    return []


def request_condition(criteria: Any, fields: Mapping[str, Field]) -> sql.Composable:
    """A request's criteria compiled against `fields`; a problem is the request's error (RequestError)."""
    try:
        return filters.compile_filter(criteria, fields)
    except FilterError as exc:
        raise RequestError(f"criteria: {exc}") from exc


# -- the fields criteria may name ---------------------------------------------------------------
def enrolment_fields() -> dict[str, Field]:
    """Enrolment criteria name registry fields; for a GROUP plan they are the household head's."""
    return registry_export.fields()


def beneficiary_fields(plan: Plan) -> dict[str, Field]:
    """A plan's beneficiaries: registry fields, status, and the plan's own variables."""
    catalogue = dict(registry_export.fields())
    catalogue["status"] = Field("status", "string", sql.Identifier(BENEFICIARY, "status"), STATUSES)
    catalogue["beneficiary_id"] = Field("beneficiary_id", "string", sql.SQL("b.beneficiary_id::text"))
    catalogue.update(filters.schema_fields(plan.variables_schema, "attributes", table_alias=BENEFICIARY))
    return catalogue


def candidate_fields(plan: Plan) -> dict[str, Field]:
    """Fields of someone not yet enrolled: registry fields; beneficiary fields exist but have no value yet."""
    catalogue = dict(enrolment_fields())
    for name, field in beneficiary_fields(plan).items():
        catalogue.setdefault(name, Field(name, field.type, sql.SQL("NULL::{}").format(
            sql.SQL(filters.SQL_TYPES[field.type])), field.enum))
    return catalogue


# -- what the entitlement rule needs to know of each selected row --------------------------------
def entitlement_facts(plan: Plan, fields: Mapping[str, Field]) -> tuple[sql.Composable, sql.Composable,
                                                                        sql.Composable]:
    """(a WITH clause, counted members, matching top-ups) for rows with aliases i (person) and h (household).

    counted members: the household's members the per-member criteria select (a person without a
    household counts alone); matching top-ups: the 0-based positions of the top-ups whose criteria
    the row meets, `fields` naming what those criteria may read.
    """
    rule = plan.document.get("entitlement") or {}
    per_member = rule.get("per_member")
    if per_member is None:
        counts, counted = sql.SQL("SELECT NULL::text AS household_code, 0::bigint AS n WHERE false"), sql.SQL("NULL")
    else:
        member = filters.compile_filter(per_member.get("criteria") or {}, registry_export.fields())
        counts = sql.SQL("SELECT i.household_code, count(*) AS n FROM {} WHERE i.household_code IS NOT NULL"
                         " AND {} GROUP BY i.household_code").format(registry_export.FROM_REGISTRY, member)
        counted = sql.SQL("CASE WHEN h.household_code IS NULL THEN CASE WHEN {} THEN 1 ELSE 0 END"
                          " ELSE coalesce(member_counts.n, 0) END").format(member)
    matches = [sql.SQL("CASE WHEN {} THEN {} END").format(filters.compile_filter(top_up["criteria"], fields),
                                                            sql.Literal(position))
               for position, top_up in enumerate(rule.get("top_ups") or [])]
    top_ups = sql.SQL("to_jsonb(array_remove(ARRAY[{}]::integer[], NULL))").format(sql.SQL(", ").join(matches)) \
        if matches else sql.SQL("'[]'::jsonb")
    return sql.SQL("WITH member_counts AS ({})").format(counts), counted, top_ups


def registry_rows(plan_type: str) -> sql.Composable:
    """FROM clause of what a plan enrols, with the aliases the fields use (i: person, h: household)."""
    if plan_type == "GROUP":
        return sql.SQL("registry.households AS h LEFT JOIN registry.individuals AS i"
                       " ON i.individual_id = h.head_individual_id")
    return registry_export.FROM_REGISTRY


def beneficiary_rows(plan_type: str) -> sql.Composable:
    """FROM clause of a plan's current beneficiaries with their registry record (aliases b, i, h)."""
    if plan_type == "GROUP":
        return sql.SQL("programmes.beneficiaries AS b JOIN registry.households AS h USING (household_code)"
                       " LEFT JOIN registry.individuals AS i ON i.individual_id = h.head_individual_id")
    return sql.SQL("programmes.beneficiaries AS b JOIN registry.individuals AS i USING (individual_id)"
                   " LEFT JOIN registry.households AS h ON h.household_code = i.household_code")


# -- plans in the ledger --------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanVersion:
    plan: Plan
    version: int
    status: str


def lock_plan(cur: psycopg2.extensions.cursor, code: str) -> None:
    """Serialise, until the transaction ends, the commits that change one plan: its versions, its
    beneficiaries (enrolment, status, data) and its bills, so each re-checks what the others wrote.
    Order when a commit takes several locks: the registry's, all plans' (`lock_plans`), one plan's."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.plan:' || lower(%s)))", (code,))


def current(cur: psycopg2.extensions.cursor, code: str) -> PlanVersion | None:
    """The latest approved version of the plan with this code (codes are compared without case)."""
    cur.execute(
        "SELECT document, version, status FROM ledger.plan_versions WHERE lower(plan_code) = lower(%s)"
        " ORDER BY version DESC LIMIT 1",
        (code,),
    )
    found = cur.fetchone()
    return PlanVersion(Plan(found[0]), int(found[1]), found[2]) if found else None


def require(cur: psycopg2.extensions.cursor, code: Any) -> PlanVersion:
    """The plan with exactly this code, or PlanError."""
    if not isinstance(code, str) or not code.strip():
        raise PlanError("name the plan by its code")
    found = current(cur, code.strip())
    if found is None or found.plan.code != code.strip():
        raise PlanError(f"no benefit plan with code {code.strip()[:40]!r}")
    return found


def require_active(cur: psycopg2.extensions.cursor, code: Any) -> PlanVersion:
    found = require(cur, code)
    if found.status != "ACTIVE":
        raise PlanError(f"plan {found.plan.code} is {found.status.lower()}")
    return found


def active_plan_choices(cur: psycopg2.extensions.cursor) -> list[tuple[str, str]]:
    """(code, "code: name") of every plan whose latest version is ACTIVE, as the ledger says now."""
    cur.execute("SELECT plan_code, plan_code || ': ' || name FROM (SELECT DISTINCT ON (plan_code) plan_code, name,"
                " status FROM ledger.plan_versions ORDER BY plan_code, version DESC) latest"
                " WHERE status = 'ACTIVE' ORDER BY plan_code")
    return [(code, label) for code, label in cur.fetchall()]


def lock_plans(cur: psycopg2.extensions.cursor) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.plans'))")


def refuse_if_moved_on(cur: psycopg2.extensions.cursor, code: str, based_on: int | None) -> None:
    found = current(cur, code)
    latest = found.version if found else None
    if latest != based_on:
        raise CommitConflict(f"plan {code} changed after the proposal (now version {latest}); ask again")
