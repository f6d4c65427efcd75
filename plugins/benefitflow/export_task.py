"""The export DAGs' one step, as a plain function: a source chosen from the parameters, a CSV, an audit event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg2.extensions
from airflow.sdk.exceptions import AirflowFailException

from benefitflow import config, db, exports
from benefitflow.exports import ExportError, Source
from benefitflow.intake import RequestError

SourceFor = Callable[[psycopg2.extensions.cursor, dict[str, Any]], Source]


def run_export(source_for: SourceFor, params: dict[str, Any], *, user: str, label: str) -> dict[str, Any]:
    try:
        with db.transaction() as cur:
            source = source_for(cur, params)
            done = exports.export(cur, source, document=params.get("filter") or {},
                                  columns=params.get("columns") or None, target_dir=config.outbox() / "exports",
                                  user=user, label=label, details={"parameters": params})
    except (ExportError, RequestError) as exc:
        raise AirflowFailException(str(exc)) from exc
    return {"file": str(done.path), "rows": done.rows, "sha256": done.sha256, "columns": done.columns}
