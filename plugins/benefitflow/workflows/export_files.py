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

from benefitflow.core import audit, file_store, filters
from benefitflow.core.errors import UserError
from benefitflow.core.filters import Field, FilterError
from benefitflow.workflows.inputs import checksum

# Columns that identify a person: an export naming any of them is approved by a checker first
# (benefitflow.workflows.export); an export of none of them is written at once.
PERSONAL_COLUMNS = frozenset({"first_name", "last_name", "full_name", "national_id", "phone", "phone_number",
                              "email", "dob"})


class ExportError(UserError):
    """An export request that cannot be carried out (the message is for the user)."""


@dataclass(frozen=True)
class Source:
    """What an export reads: its fields, FROM clause (with the aliases the fields use) and order.

    key / key_column: what an approved export selects by (an id of each row, or of the rows' person) and the
    column of intake.request_selection it is kept in between the request and its commit.
    """

    name: str  # file prefix and audit action: <name>-<time>-....csv, <name>.export
    fields: Mapping[str, Field]
    rows: sql.Composable
    order_by: sql.Composable
    default_columns: tuple[str, ...]
    key: sql.Composable
    key_column: str
    scope: sql.Composable = field(default_factory=lambda: sql.SQL("TRUE"))  # besides the user's filter (the plan)


@dataclass(frozen=True)
class Export:
    path: Path
    rows: int
    sha256: str
    columns: list[str]


@dataclass(frozen=True)
class Selection:
    """An export request, checked: its source, its filter compiled against the source's fields, its columns."""

    source: Source
    document: Any
    condition: sql.Composable
    columns: list[str]

    @property
    def personal_columns(self) -> list[str]:
        return [column for column in self.columns if column in PERSONAL_COLUMNS]


def select(source: Source, *, document: Any, columns: list[str] | None) -> Selection:
    """Check the filter and the columns; a clear ExportError for the user otherwise."""
    try:
        condition = filters.compile_filter(document, source.fields)
    except FilterError as exc:
        raise ExportError(f"filter: {exc}") from exc
    return Selection(source, document or {}, condition, _columns(columns or list(source.default_columns),
                                                                 source.fields))


def export(
    cur: psycopg2.extensions.cursor, source: Source, *, document: Any, columns: list[str] | None, target_dir: Path,
    user: str, label: str, details: Mapping[str, Any] | None = None,
) -> Export:
    """Write the rows the filter selects as CSV into `target_dir` now; record who exported what."""
    selection = select(source, document=document, columns=columns)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = target_dir / f"{source.name}-{stamp}-{_safe(label)}-{uuid.uuid4().hex[:6]}.csv"
    with file_store.created_text(path) as handle:
        rows = _copy(cur, selection, selection.condition, handle)
    return _recorded(cur, selection, path, rows, user, details)


def remember(cur: psycopg2.extensions.cursor, selection: Selection, request_id: int) -> int:
    """Keep what the filter selects now (the source's keys) as the request's selection; how many rows that is."""
    source = selection.source
    cur.execute(sql.SQL("INSERT INTO intake.request_selection (request_id, {}) SELECT DISTINCT {}, {} FROM {}"
                        " WHERE {} AND {}").format(sql.Identifier(source.key_column), sql.Literal(request_id),
                                                   source.key, source.rows, source.scope, selection.condition))
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} AND {} IN (SELECT {} FROM intake.request_selection"
                        " WHERE request_id = {})").format(source.rows, source.scope, source.key,
                                                          sql.Identifier(source.key_column),
                                                          sql.Literal(request_id)))
    return int(cur.fetchone()[0])


def export_approved(
    cur: psycopg2.extensions.cursor, selection: Selection, proposal: sql.Composable, request_id: int, *,
    target_dir: Path, user: str, label: str, details: Mapping[str, Any] | None = None,
) -> Export:
    """Write exactly the rows whose keys the approved proposal holds (their current values), under a name of
    the request's own: a commit run again writes the same file again."""
    source = selection.source
    approved = sql.SQL("{} IN (SELECT {} FROM {} WHERE request_id = {})").format(
        source.key, sql.Identifier(source.key_column), proposal, sql.Literal(request_id))
    path = export_path(target_dir, source.name, request_id, label)
    with file_store.replaced_text(path) as handle:
        rows = _copy(cur, selection, approved, handle)
    return _recorded(cur, selection, path, rows, user, {**(details or {}), "request_id": request_id})


def export_path(target_dir: Path, source_name: str, request_id: int, label: str) -> Path:
    return target_dir / f"{source_name}-request{request_id:08d}-{_safe(label)}.csv"


def _copy(cur: psycopg2.extensions.cursor, selection: Selection, rows_where: sql.Composable, handle: Any) -> int:
    source = selection.source
    select_list = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(file_store.spreadsheet_safe(source.fields[c].expression, source.fields[c].type),
                                   sql.Identifier(c))
        for c in selection.columns)
    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {} AND {} ORDER BY {}) TO STDOUT WITH (FORMAT csv, HEADER true)")
    cur.copy_expert(query.format(select_list, source.rows, source.scope, rows_where, source.order_by).as_string(cur),
                    handle)
    return int(cur.rowcount)


def _recorded(cur: psycopg2.extensions.cursor, selection: Selection, path: Path, rows: int, user: str,
              details: Mapping[str, Any] | None) -> Export:
    digest, _size = checksum(path)
    audit.record(cur, actor=user, action=f"{selection.source.name}.export", object_type="export",
                 object_id=path.name, outcome="EXPORTED",
                 details={**(details or {}), "filter": selection.document, "columns": selection.columns,
                          "personal_columns": selection.personal_columns, "rows": rows, "sha256": digest,
                          "path": str(path)})
    return Export(path, rows, digest, selection.columns)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:80]


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
