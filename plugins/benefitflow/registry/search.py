"""Searching the registry with the filter language, and exporting what a filter selects (audited)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow import audit, filters
from benefitflow.filters import Field, FilterError
from benefitflow.intake import checksum
from benefitflow.registry import schema

INDIVIDUAL = "i"
HOUSEHOLD = "h"
PERSON_COLUMNS = tuple(c for c in schema.CORE_COLUMNS if c != "dob")
HOUSEHOLD_MEMBERSHIP = ("household_code", "role", "recipient_type")
TEXT_COLUMNS = (*PERSON_COLUMNS, *HOUSEHOLD_MEMBERSHIP)
FROM_REGISTRY = sql.SQL("registry.individuals AS i LEFT JOIN registry.households AS h USING (household_code)")


class ExportError(ValueError):
    """An export request that cannot be carried out (the message is for the user)."""


def fields() -> dict[str, Field]:
    """Every field a registry filter may name: core columns, age, household size, schema variables."""
    registry = schema.load()
    catalogue = {name: filters.core_field(name, "string", table_alias=INDIVIDUAL) for name in TEXT_COLUMNS}
    catalogue["individual_id"] = Field("individual_id", "string", sql.SQL("i.individual_id::text"))
    catalogue["dob"] = filters.core_field("dob", "date", table_alias=INDIVIDUAL)
    catalogue["age"] = filters.age_field("dob", table_alias=INDIVIDUAL)
    catalogue["household_size"] = filters.core_field("household_size", "integer", "member_count", HOUSEHOLD)
    variables = {"properties": {p.name: p.definition for p in registry.variables}}
    catalogue.update(filters.schema_fields(variables, "attributes", table_alias=INDIVIDUAL))
    return catalogue


def where(document: Any) -> sql.Composable:
    return filters.compile_filter(document, fields())


def count(cur: psycopg2.extensions.cursor, document: Any) -> int:
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(FROM_REGISTRY, where(document)))
    return int(cur.fetchone()[0])


def default_columns() -> list[str]:
    return ["individual_id", *PERSON_COLUMNS, "dob", *HOUSEHOLD_MEMBERSHIP, "household_size",
            *(p.name for p in schema.load().variables)]


@dataclass(frozen=True)
class Export:
    path: Path
    rows: int
    sha256: str
    columns: list[str]


def export(
    cur: psycopg2.extensions.cursor, *, document: Any, columns: list[str] | None, target_dir: Path, user: str,
    label: str,
) -> Export:
    """Write the individuals the filter selects as CSV into `target_dir`; record who exported what."""
    catalogue = fields()
    try:
        condition = filters.compile_filter(document, catalogue)
    except FilterError as exc:
        raise ExportError(f"filter: {exc}") from exc
    chosen = _columns(columns or default_columns(), catalogue)
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = target_dir / f"registry-{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)[:80]}-{uuid.uuid4().hex[:6]}.csv"
    select = sql.SQL(", ").join(sql.SQL("{} AS {}").format(catalogue[c].expression, sql.Identifier(c)) for c in chosen)
    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY i.individual_id) TO STDOUT WITH (FORMAT csv, HEADER true)")
    with path.open("x", encoding="utf-8", newline="") as handle:
        cur.copy_expert(query.format(select, FROM_REGISTRY, condition).as_string(cur), handle)
    rows = cur.rowcount
    path.chmod(0o640)
    digest, _size = checksum(path)
    audit.record(cur, actor=user, action="registry.export", object_type="export", object_id=path.name,
                 outcome="EXPORTED", details={"filter": document or {}, "columns": chosen, "rows": rows,
                                              "sha256": digest, "path": str(path)})
    return Export(path, rows, digest, chosen)


def _columns(requested: list[str], catalogue: Mapping[str, Field]) -> list[str]:
    if not isinstance(requested, list) or not all(isinstance(c, str) for c in requested):
        raise ExportError("columns must be a list of column names")
    unknown = [c for c in requested if c not in catalogue]
    if unknown:
        raise ExportError(f"unknown column(s) {', '.join(repr(c[:80]) for c in unknown)}; "
                          f"known: {', '.join(sorted(catalogue))}")
    duplicated = sorted({c for c in requested if requested.count(c) > 1})
    if duplicated:
        raise ExportError(f"column(s) asked for twice: {', '.join(duplicated)}")
    return requested
