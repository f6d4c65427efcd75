"""The export DAGs: personal data leaves the platform only once a checker approves it.

    intake -> validate -> route -> export                                       (no personal column)
                                -> propose -> approve -> commit -> publish    (names, national id, ...)

intake records the request (who asks, the filter, the columns); validate checks the filter and
the columns against the source's whitelisted fields and, when a column is personal
(`exports.PERSONAL_COLUMNS`), keeps the keys of the rows the filter selects now. The checker
sees who asks, the filter, the columns and the row count; the commit writes exactly those rows
into the outbox, under the request's own name. An export without personal columns is written
at once by `export`. The audit trail keeps both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2.extensions
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException
from psycopg2 import sql

from benefitflow import config, db, exports, intake
from benefitflow.exports import ExportError, Selection, Source
from benefitflow.intake import RequestError
from benefitflow.request_workflow import (
    Options,
    RequestWorkflow,
    intake_step,
    run_steps_after_validate,
    step_tasks,
    validate_step,
)
from benefitflow.workflow import approve_commit_publish, maker_of, workflow_dag

Cursor = psycopg2.extensions.cursor
SourceFor = Callable[[Cursor, Options], Source]
PROPOSAL_MODEL = "export_proposal"
PERSONAL_DATA_NOTE = f"""
**Personal data is approved first.** If the columns include any of
{", ".join(f"`{column}`" for column in sorted(exports.PERSONAL_COLUMNS))} (the default set does),
the run asks the checker group of this export (`approval_groups.yaml`) at `approve`: the checker
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


@dataclass(frozen=True)
class ExportWorkflow:
    """An export DAG: its source (whitelisted fields, rows, key) chosen from the trigger form's parameters."""

    dag_id: str
    source_for: SourceFor
    params: dict[str, Param]
    doc_md: str
    tags: tuple[str, ...] = ()

    @property
    def operation(self) -> str:
        return self.dag_id

    @property
    def documentation(self) -> str:
        return self.doc_md + PERSONAL_DATA_NOTE

    def as_request(self) -> RequestWorkflow:
        """The approved path: the six steps of every request, with this export's validate, summary and commit."""
        return RequestWorkflow(
            dag_id=self.dag_id, operation=self.operation, params=self.params, validate=self._validate,
            proposal_model=PROPOSAL_MODEL, summarise=_summarise, commit=self._commit,
            publish_asset=f"benefitflow://exports/{self.dag_id}", doc_md=self.documentation, tags=self.tags,
            describe=lambda options: f"{self.dag_id} of {_columns_text(options.get('columns'))}",
            after_failed_commit=_remove_request_file,
        )

    def selection(self, cur: Cursor, options: Options) -> Selection:
        try:
            return exports.select(self.source_for(cur, dict(options)), document=options.get("filter") or {},
                                  columns=options.get("columns") or None)
        except ExportError as exc:
            raise RequestError(str(exc)) from exc

    def _validate(self, cur: Cursor, request_id: int, options: Options, _user: str) -> dict[str, Any]:
        selection = self.selection(cur, options)
        document: dict[str, Any] = {"filter": selection.document, "columns": selection.columns,
                                    "personal_columns": selection.personal_columns}
        if selection.personal_columns:
            document["rows_to_export"] = exports.remember(cur, selection, request_id)
        return document

    def _commit(self, cur: Cursor, commit_id: int, request_id: int) -> int:
        cur.execute("SELECT parameters, requested_by, run_id FROM intake.requests WHERE request_id = %s",
                    (request_id,))
        parameters, maker, run_id = cur.fetchone()
        done = exports.export_approved(
            cur, self.selection(cur, parameters), sql.Identifier("proposals", PROPOSAL_MODEL), request_id,
            target_dir=export_dir(), user=maker, label=run_id,
            details={"parameters": parameters, "commit_id": commit_id})
        return done.rows


def _summarise(cur: Cursor, request_id: int) -> dict[str, Any]:
    """What the checker reads beside who asks (the request's maker): the filter, the columns, the rows."""
    cur.execute("SELECT document FROM intake.requests WHERE request_id = %s", (request_id,))
    (document,) = cur.fetchone()
    return {"filter": json.dumps(document["filter"], sort_keys=True), "columns": ", ".join(document["columns"]),
            "personal_columns": ", ".join(document["personal_columns"]), "rows_to_export": document["rows_to_export"]}


def _columns_text(columns: Any) -> str:
    return ", ".join(map(str, columns)) if isinstance(columns, list) and columns else "the default columns"


def _remove_request_file(request_id: int) -> None:
    """A commit that did not go through leaves no file (the commit writes it before its transaction ends)."""
    for path in export_dir().glob(f"*-request{request_id:08d}-*.csv"):
        path.unlink(missing_ok=True)


def export_now(workflow: ExportWorkflow, request: dict[str, Any], options: Options, *, user: str,
               label: str) -> dict[str, Any]:
    """An export without personal columns: written at once, audited, the request applied."""
    request_id = int(request["request_id"])
    with db.transaction() as cur:
        selection = workflow.selection(cur, options)
        if selection.personal_columns:  # the route is the validate step's: checked again where the file is written
            raise AirflowFailException(f"columns {', '.join(selection.personal_columns)} are personal data: "
                                       "such an export waits for a checker's approval")
        done = exports.export(cur, selection.source, document=selection.document, columns=selection.columns,
                              target_dir=export_dir(), user=user, label=label,
                              details={"parameters": dict(options), "request_id": request_id})
        intake.set_request_status(cur, request_id, "APPLIED")
    return {"file": str(done.path), "rows": done.rows, "sha256": done.sha256, "columns": done.columns}


# -- the DAG ---------------------------------------------------------------------------------
def build_export_dag(workflow: ExportWorkflow) -> DAG:
    steps = workflow.as_request()
    with workflow_dag(workflow.dag_id, workflow.documentation, workflow.tags, workflow.params) as dag:
        intake_task, validate_task, propose_task, commit_task = step_tasks(steps)

        @task.branch(task_id="route")
        def route(validated: dict[str, Any]) -> str:
            """Personal columns go through a checker; the rest is written at once."""
            return "propose" if validated["personal_columns"] else "export"

        @task(task_id="export")
        def export_task(request: dict[str, Any], **context: Any) -> dict[str, Any]:
            return export_now(workflow, request, context["params"], user=maker_of(context), label=context["run_id"])

        request = intake_task()
        validated = validate_task(request)
        proposal = propose_task(request, validated)
        route(validated) >> [export_task(request), proposal]
        approve_commit_publish(steps.operation, steps.proposal_model, steps.publish_asset, proposal,
                               commit_task(request), steps.writes)
    return dag


# -- the same steps without the scheduler (integration tests) -------------------------------
def run_steps(
    workflow: ExportWorkflow, *, options: Options, maker: str, checker: str | None, run_id: str,
    on_step: Callable[[str, Callable[[], Any]], Any] = lambda _name, action: action(),
) -> dict[str, Any]:
    """As the DAG: written at once without personal columns, else proposed, decided by `checker`, committed."""
    steps = workflow.as_request()
    request = intake_step(workflow=steps, options=options, user=maker, dag_id=f"{workflow.dag_id}:direct",
                          run_id=run_id)
    validated = validate_step(workflow=steps, request=request, options=options, user=maker)
    if not validated["personal_columns"]:
        return {"export": export_now(workflow, request, options, user=maker, label=run_id)}
    return run_steps_after_validate(steps, request, validated, maker=maker, checker=checker, run_id=run_id,
                                    on_step=on_step)
