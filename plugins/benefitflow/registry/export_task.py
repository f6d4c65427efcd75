"""The `registry_export` DAG's one step, as a plain function."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from benefitflow import config, db
from benefitflow.registry.search import ExportError, export


def export_registry(params: dict[str, Any], *, user: str, label: str) -> dict[str, Any]:
    try:
        with db.transaction() as cur:
            done = export(cur, document=params.get("filter") or {}, columns=params.get("columns") or None,
                          target_dir=config.outbox() / "exports", user=user, label=label)
    except ExportError as exc:
        raise AirflowFailException(str(exc)) from exc
    return {"file": str(done.path), "rows": done.rows, "sha256": done.sha256, "columns": done.columns}
