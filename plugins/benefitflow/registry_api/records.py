"""One page of registry records in the DCI shapes, holding only what the client may read.

The SQL selects only the client's fields (a field out of scope is never read from the database), filters with
a condition compiled by `queries`, and returns one page: at most the client's page size, so Python shapes a
bounded number of rows, whatever the registry's size.

- Member: a person (`spdci:SR_Person`: identifier, name, sex, birth_date, address, phone_number, email,
  registration_date), with their household (group_identifier, relationship_head) when in scope.
- Group: a household (`spdci:Group`: group_identifier, group_type, group_size, group_head_info, member_list of
  `Member` with demographic_info), the households of the people the query selects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core.filters import Field
from benefitflow.registry import registry_export, schema
from benefitflow.registry_api.clients import Client, Settings

PERSON_COLUMNS = (*registry_export.PERSON_COLUMNS, "dob", *registry_export.HOUSEHOLD_MEMBERSHIP)
JSONB_PAIRS = 50  # jsonb_build_object takes at most 100 arguments: larger sets are built in parts and joined
SEX = {"F": "female", "M": "male", "O": "other"}
CONTACT_VARIABLES = {"phone": "phone_number", "email": "email"}  # variables the Person object has a list for
GROUP_SORT = {"household_code": sql.SQL("g.household_code"), "household_size": sql.SQL("g.member_count")}
BENEFITFLOW_ID = "BENEFITFLOW_ID"


@cache
def search_fields() -> dict[str, Field]:
    """The registry's filter fields, individual_id compared as a uuid (so its unique index serves a look-up)."""
    return {**registry_export.fields(),
            "individual_id": Field("individual_id", "string", sql.SQL("{}.individual_id").format(
                sql.Identifier(registry_export.INDIVIDUAL)))}


@dataclass(frozen=True)
class Page:
    records: list[dict[str, Any]]
    total_count: int
    ids: list[str]  # the people whose records were returned (members of the households, for Group)
    households: list[str] = field(default_factory=list)  # the household codes returned (Group)


@dataclass(frozen=True)
class Order:
    attribute: str
    descending: bool


def person_select(client: Client) -> sql.Composable:
    columns = [sql.SQL("i.individual_id::text AS individual_id"), sql.SQL("i.registered_at"),
               sql.SQL("i.updated_at")]
    columns += [sql.SQL("i.{}").format(sql.Identifier(name)) for name in PERSON_COLUMNS if client.may_read(name)]
    if client.may_read("household_size"):
        columns.append(sql.SQL("h.member_count AS household_size"))
    variables = [p.name for p in schema.load().variables if client.may_read(p.name)]
    if variables:
        parts = [sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
            sql.SQL("{}, i.attributes -> {}").format(sql.Literal(name), sql.Literal(name))
            for name in variables[start:start + JSONB_PAIRS])) for start in range(0, len(variables), JSONB_PAIRS)]
        columns.append(sql.SQL("jsonb_strip_nulls({}) AS attributes").format(sql.SQL(" || ").join(parts)))
    return sql.SQL(", ").join(columns)


def members_page(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, condition: sql.Composable,
                 order: list[Order], limit: int, offset: int) -> Page:
    fields = search_fields()
    order_by = [sql.SQL("{} {} NULLS LAST").format(fields[o.attribute].expression,
                                                   sql.SQL("DESC" if o.descending else "ASC")) for o in order]
    cur.execute(sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
        person_select(client), registry_export.FROM_REGISTRY, condition,
        sql.SQL(", ").join([*order_by, sql.SQL("i.individual_id")])), (limit, offset))
    rows = _dicts(cur)
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(registry_export.FROM_REGISTRY, condition))
    total = int(cur.fetchone()[0])
    return Page([person(row, client, settings, with_household=True) for row in rows], total,
                [row["individual_id"] for row in rows])


def groups_page(cur: psycopg2.extensions.cursor, client: Client, settings: Settings, condition: sql.Composable,
                order: list[Order], limit: int, offset: int) -> Page:
    selected = sql.SQL("SELECT i.household_code FROM {} WHERE {} AND i.household_code IS NOT NULL").format(
        registry_export.FROM_REGISTRY, condition)
    order_by = [sql.SQL("{} {}").format(GROUP_SORT[o.attribute], sql.SQL("DESC" if o.descending else "ASC"))
                for o in order]
    cur.execute(sql.SQL(
        "SELECT g.household_code, g.member_count, g.created_at, g.head_individual_id::text AS head_individual_id"
        " FROM registry.households AS g WHERE g.household_code IN ({}) ORDER BY {} LIMIT %s OFFSET %s").format(
        selected, sql.SQL(", ").join([*order_by, sql.SQL("g.household_code")])), (limit, offset))
    households = _dicts(cur)
    cur.execute(sql.SQL("SELECT count(DISTINCT i.household_code) FROM {} WHERE {} AND i.household_code IS NOT NULL")
                .format(registry_export.FROM_REGISTRY, condition))
    total = int(cur.fetchone()[0])
    codes = [household["household_code"] for household in households]
    cur.execute(sql.SQL("SELECT {}, i.household_code AS member_of, i.role AS member_role FROM {}"
                        " WHERE i.household_code = ANY(%s) ORDER BY i.household_code, i.individual_id").format(
        person_select(client), registry_export.FROM_REGISTRY), (codes,))
    members: dict[str, list[dict[str, Any]]] = {}
    for row in _dicts(cur):
        members.setdefault(row["member_of"], []).append(row)
    # What went out is every member's record: the audit trail names each person, the count is of people.
    return Page([group(household, members.get(household["household_code"], []), client, settings)
                 for household in households], total,
                [row["individual_id"] for code in codes for row in members.get(code, [])], codes)


def _dicts(cur: psycopg2.extensions.cursor) -> list[dict[str, Any]]:
    names = [column.name for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _identifier(id_type: str, value: Any) -> dict[str, Any]:
    return {"@type": "Identifier", "identifier_type": id_type, "identifier_value": str(value)}


def _timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def person(row: Mapping[str, Any], client: Client, settings: Settings, *, with_household: bool) -> dict[str, Any]:
    """A person as `spdci:SR_Person`, with only the fields the client may read (absent, not null, otherwise)."""
    identifiers = [_identifier(BENEFITFLOW_ID, row["individual_id"])]
    if row.get("national_id"):
        identifiers.append(_identifier(settings.identifier_type_of("national_id"), row["national_id"]))
    record: dict[str, Any] = {"@type": "spdci:SR_Person", "@id": f"urn:benefitflow:individual:{row['individual_id']}",
                              "identifier": identifiers}
    name = {key: row[column] for key, column in (("given_name", "first_name"), ("surname", "last_name"))
            if row.get(column)}
    if name:
        record["name"] = {"@type": "Name", **name}
    if row.get("sex"):
        record["sex"] = SEX.get(row["sex"], row["sex"])
    if isinstance(row.get("dob"), date):
        record["birth_date"] = row["dob"].isoformat()
    address = {key: row[column] for key, column in (("locality", "location_name"), ("locality_code", "location_code"),
                                                     ("region", "region")) if row.get(column)}
    if address:
        record["address"] = [{"@type": "Address", **address}]
    attributes = dict(row.get("attributes") or {})
    for variable, key in CONTACT_VARIABLES.items():
        if variable in attributes:
            record[key] = [attributes.pop(variable)]
    record["registration_date"] = _timestamp(row["registered_at"])
    record["last_updated"] = _timestamp(row["updated_at"])
    if with_household and row.get("household_code"):
        record["group_identifier"] = [_identifier(settings.identifier_type_of("household_code"), row["household_code"])]
        if row.get("role"):
            record["relationship_head"] = row["role"]
    extra = {key: row[key] for key in ("recipient_type", "household_size") if row.get(key) is not None}
    extra |= attributes
    if extra:
        record["additional_attributes"] = [{key: value} for key, value in sorted(extra.items())]
    return record


def group(household: Mapping[str, Any], members: list[Mapping[str, Any]], client: Client,
          settings: Settings) -> dict[str, Any]:
    code = household["household_code"]
    member_records = [_member(row, client, settings) for row in members]
    head = next((record for row, record in zip(members, member_records, strict=True)
                 if row["individual_id"] == household["head_individual_id"]), None)
    record: dict[str, Any] = {
        "@type": "spdci:Group", "@id": f"urn:benefitflow:household:{code}",
        "group_identifier": [_identifier(settings.identifier_type_of("household_code"), code)],
        "group_type": "household",
        "group_size": household["member_count"],
        "member_list": member_records,
        "registration_date": _timestamp(household["created_at"]),
        "last_updated": _timestamp(max((row["updated_at"] for row in members), default=household["created_at"])),
    }
    if head is not None:
        record["group_head_info"] = head
    return record


def _member(row: Mapping[str, Any], client: Client, settings: Settings) -> dict[str, Any]:
    member = {"@type": "Member", "@id": f"urn:benefitflow:individual:{row['individual_id']}",
              "member_identifier": [_identifier(BENEFITFLOW_ID, row["individual_id"])],
              "demographic_info": person(row, client, settings, with_household=False)}
    if row.get("member_role") and client.may_read("role"):
        member["relationship_head"] = row["member_role"]
    return member


def sort_fields(record_type: str, client: Client) -> set[str]:
    if record_type == "Group":
        return set(GROUP_SORT)
    return {name for name in search_fields() if client.may_read(name)}
