"""CSV exports of what a filter selects: whitelisted columns, streamed with COPY, audited.

Exports of personal data are recorded in the audit trail: who, which filter, which columns,
how many rows, the file's sha256 and path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow import audit, file_store, filters
from benefitflow.filters import Field, FilterError
from benefitflow.intake import checksum


class ExportError(ValueError):
    """An export request that cannot be carried out (the message is for the user)."""


@dataclass(frozen=True)
class Source:
    """What an export reads: its fields, FROM clause (with the aliases the fields use) and order."""

    name: str  # file prefix and audit action: <name>-<time>-....csv, <name>.export
    fields: Mapping[str, Field]
    rows: sql.Composable
    order_by: sql.Composable
    default_columns: tuple[str, ...]
    scope: sql.Composable = field(default_factory=lambda: sql.SQL("TRUE"))  # besides the user's filter (the plan)


@dataclass(frozen=True)
class Export:
    path: Path
    rows: int
    sha256: str
    columns: list[str]


def export(
    cur: psycopg2.extensions.cursor, source: Source, *, document: Any, columns: list[str] | None, target_dir: Path,
    user: str, label: str, details: Mapping[str, Any] | None = None,
) -> Export:
    """Write the rows the filter selects as CSV into `target_dir`; record who exported what."""
    try:
        condition = filters.compile_filter(document, source.fields)
    except FilterError as exc:
        raise ExportError(f"filter: {exc}") from exc
    chosen = _columns(columns or list(source.default_columns), source.fields)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_label = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:80]
    path = target_dir / f"{source.name}-{stamp}-{safe_label}-{uuid.uuid4().hex[:6]}.csv"
    select = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(file_store.spreadsheet_safe(source.fields[c].expression, source.fields[c].type),
                                   sql.Identifier(c))
        for c in chosen)
    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {} AND {} ORDER BY {}) TO STDOUT WITH (FORMAT csv, HEADER true)")
    with file_store.created_text(path) as handle:
        cur.copy_expert(query.format(select, source.rows, source.scope, condition, source.order_by).as_string(cur),
                        handle)
    rows = cur.rowcount
    digest, _size = checksum(path)
    audit.record(cur, actor=user, action=f"{source.name}.export", object_type="export", object_id=path.name,
                 outcome="EXPORTED", details={**(details or {}), "filter": document or {}, "columns": chosen,
                                              "rows": rows, "sha256": digest, "path": str(path)})
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
