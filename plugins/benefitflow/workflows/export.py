"""Export workflows: personal data leaves the platform only once a checker approves it.

    intake -> validate -> route -> export                                       (no personal column)
                                -> propose -> approve -> commit -> publish    (names, national id, ...)

intake records the request (who asks, the filter, the columns); validate checks the filter and
the columns against the source's whitelisted fields and, when a column is personal
(`export_files.PERSONAL_COLUMNS`), keeps the keys of the rows the filter selects now. The checker
sees who asks, the filter, the columns and the row count; the commit writes exactly those rows
into the outbox, under the request's own name. An export without personal columns is written
at once by `export` (the workflow's shortcut). The audit trail keeps both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core import config, db
from benefitflow.core.errors import RequestError, WorkflowError
from benefitflow.workflows import export_files, inputs
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    Cursor,
    FormCheck,
    FormIntake,
    Options,
    Proposal,
    Publish,
    Shortcut,
    Workflow,
    plan_parameter,
)
from benefitflow.workflows.export_files import ExportError, Selection, Source
from benefitflow.workflows.proposal_digest import ProposalRef

SourceFor = Callable[[Cursor, Options], Source]
PERSONAL_DATA_NOTE = f"""
**Personal data is approved first.** If the columns include any of
{", ".join(f"`{column}`" for column in sorted(export_files.PERSONAL_COLUMNS))} (the default set does),
the run asks the checker group of this export (its declaration, or `approval_groups.yaml`) at `approve`: the checker
reads who asks, the filter, the columns and how many rows. Approved, the commit writes exactly
the rows the filter selected when asked, as `exports/<name>-request<id>-<run>.csv`; rejected, no
file. Without such columns the `export` step writes the file at once. Both are in the audit trail.
"""


def filter_and_columns(filter_help: str, columns_help: str = "columns to export (empty: the default set)",
                       ) -> dict[str, Param]:
    """The trigger form's `filter` (the filter language, a JSON object) and `columns` (names, empty for the default)."""
    return {"filter": Param({}, type="object", description=filter_help),
            "columns": Param([], type="array", items={"type": "string"}, description=columns_help)}


def export_dir() -> Path:
    return config.outbox_folder("exports")


def export_workflow(*, dag_id: str, source_for: SourceFor, params: dict[str, Param], doc_md: str,
                    approve: Approval, tags: tuple[str, ...] = ()) -> Workflow:
    """An export of the rows `source_for` offers (whitelisted fields, rows, key), chosen by the trigger form;
    `approve` says who approves it when it has personal columns."""
    steps = _ExportSteps(source_for)
    return Workflow(
        dag_id=dag_id,
        doc_md=doc_md + PERSONAL_DATA_NOTE,
        intake=FormIntake(params=params, plan_of=plan_parameter,
                          describe=lambda options: f"{dag_id} of {_columns_text(options.get('columns'))}"),
        validate=FormCheck(check=steps.validate),
        propose=Proposal(summarise=_summarise),
        approve=approve,
        commit=Commit(append=steps.commit, writes=(), after_failure=_remove_request_file),
        publish=Publish(asset=f"benefitflow://exports/{dag_id}"),
        tags=tags,
        shortcut=Shortcut(task_id="export", applies=lambda validated: not validated["personal_columns"],
                          run=steps.export_now),
    )


@dataclass(frozen=True)
class _ExportSteps:
    source_for: SourceFor

    def selection(self, cur: Cursor, options: Options) -> Selection:
        try:
            return export_files.select(self.source_for(cur, dict(options)), document=options.get("filter") or {},
                                       columns=options.get("columns") or None)
        except ExportError as exc:
            raise RequestError(str(exc)) from exc

    def validate(self, cur: Cursor, request_id: int, options: Options, _user: str) -> dict[str, Any]:
        selection = self.selection(cur, options)
        document: dict[str, Any] = {"filter": selection.document, "columns": selection.columns,
                                    "personal_columns": selection.personal_columns}
        if selection.personal_columns:
            document["rows_to_export"] = export_files.remember(cur, selection, request_id)
        return document

    def commit(self, cur: Cursor, commit_id: int, proposal: ProposalRef) -> int:
        """Writes the rows whose keys the proposal kept when the export was asked for."""
        cur.execute("SELECT parameters, requested_by, run_id FROM intake.requests WHERE request_id = %s",
                    (proposal.key,))
        parameters, maker, run_id = cur.fetchone()
        done = export_files.export_approved(
            cur, self.selection(cur, parameters), sql.Identifier(*proposal.table.split(".")), proposal.key,
            target_dir=export_dir(), user=maker, label=run_id,
            details={"parameters": parameters, "commit_id": commit_id})
        return done.rows

    def export_now(self, request: dict[str, Any], options: Options, *, user: str, label: str) -> dict[str, Any]:
        """An export without personal columns: written at once, audited, the request applied."""
        request_id = int(request["request_id"])
        with db.transaction() as cur:
            selection = self.selection(cur, options)
            if selection.personal_columns:  # the route is the validate step's: checked again where the file is written
                raise WorkflowError(f"columns {', '.join(selection.personal_columns)} are personal data: "
                                           "such an export waits for a checker's approval")
            done = export_files.export(cur, selection.source, document=selection.document, columns=selection.columns,
                                       target_dir=export_dir(), user=user, label=label,
                                       details={"parameters": dict(options), "request_id": request_id})
            inputs.set_request_status(cur, request_id, "APPLIED")
        return {"file": str(done.path), "rows": done.rows, "sha256": done.sha256, "columns": done.columns}


def _summarise(cur: Cursor, proposal: ProposalRef) -> dict[str, Any]:
    """What the checker reads beside who asks (the request's maker): the filter, the columns, the rows."""
    cur.execute("SELECT document FROM intake.requests WHERE request_id = %s", (proposal.key,))
    (document,) = cur.fetchone()
    return {"filter": json.dumps(document["filter"], sort_keys=True), "columns": ", ".join(document["columns"]),
            "personal_columns": ", ".join(document["personal_columns"]), "rows_to_export": document["rows_to_export"]}


def _columns_text(columns: Any) -> str:
    return ", ".join(map(str, columns)) if isinstance(columns, list) and columns else "the default columns"


def _remove_request_file(request_id: int) -> None:
    """A commit that did not go through leaves no file (the commit writes it before its transaction ends)."""
    for path in export_dir().glob(f"*-request{request_id:08d}-*.csv"):
        path.unlink(missing_ok=True)
