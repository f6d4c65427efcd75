"""Step 1, intake: a file is opened once in the inbox, archived, recorded and staged with COPY;
a form's parameters are recorded as given. A refusal is kept (the upload's record and the audit trail)."""

from __future__ import annotations

import logging
from typing import Any

from benefitflow.core import audit, config, db, file_store
from benefitflow.core.errors import IntakeError, WorkflowError
from benefitflow.core.file_store import InboxError
from benefitflow.workflows import inputs
from benefitflow.workflows.declaration import FileIntake, Options, Taken, Workflow
from benefitflow.workflows.inputs import FileSpec

UPLOAD_MODES = ("create", "update")

log = logging.getLogger(__name__)


def intake_step(*, workflow: Workflow, options: Options, user: str, dag_id: str, run_id: str) -> Taken:
    """The run's input taken in: its upload (a file workflow) or its request (a form workflow)."""
    if workflow.recover is not None:
        try:
            for done in workflow.recover():
                log.warning("%s: %s", workflow.operation, done)
        except Exception:  # what an earlier run left half done must not stop this one
            log.exception("%s: finishing what earlier runs left half done failed", workflow.operation)
    if isinstance(workflow.intake, FileIntake):
        return take_in_file(spec=workflow.intake.spec_for(options), file=str(options.get("file") or ""), user=user,
                            dag_id=dag_id, run_id=run_id, mode=options.get("mode"),
                            plan_code=workflow.intake.plan_of(options), operation=workflow.operation)
    with db.transaction() as cur:
        request_id = inputs.register_request(
            cur, kind=workflow.operation, plan_code=workflow.intake.plan_of(options)[:100], parameters=dict(options),
            user=user, dag_id=dag_id, run_id=run_id,
        )
    described = workflow.intake.describe(options) or f"{workflow.operation} {request_id}"
    return {"request_id": request_id, "request": described}


def mode_of(options: Options) -> str:
    """An upload's `mode`: create (new records, the default) or update (rows name the records they change)."""
    mode = options.get("mode") or "create"
    if mode not in UPLOAD_MODES:
        raise WorkflowError(f"mode must be one of {', '.join(UPLOAD_MODES)}, not {str(mode)[:20]!r}")
    return str(mode)


def take_in_file(
    *, spec: FileSpec, file: str, user: str, dag_id: str, run_id: str, plan_code: str = "", mode: str | None = None,
    operation: str | None = None,
) -> dict[str, Any]:
    """Open the file once in the inbox, archive and register it, stage its rows; `operation` defaults to `dag_id`."""
    try:
        with file_store.open_in_inbox(file, config.inbox()) as handed_in, db.transaction() as cur:
            upload = inputs.register(
                cur, handed_in=handed_in, kind=spec.kind, plan_code=plan_code, user=user,
                archive_dir=config.outbox_folder("uploads"), dag_id=dag_id, run_id=run_id, mode=mode,
                operation=operation,
            )
    except (IntakeError, InboxError) as exc:
        with db.transaction() as cur:  # refused before any upload record: the audit trail keeps the attempt
            audit.record(cur, actor=user, action="upload.refused", object_type="file", object_id=file[:500],
                         outcome="REFUSED", details={"reason": str(exc), "dag_id": dag_id, "run_id": run_id})
        raise WorkflowError(str(exc)) from exc
    try:
        header = inputs.read_header(upload.stored_path, spec, upload.file_name)
        with db.transaction() as cur:
            table, row_count = inputs.stage(cur, upload, header)
            inputs.set_status(cur, upload.upload_id, "RECEIVED", staged_table=table, row_count=row_count)
    except IntakeError as exc:
        stop_upload(upload.upload_id, user, str(exc))
        raise WorkflowError(str(exc)) from exc
    return {"upload_id": upload.upload_id, "file_name": upload.file_name, "staged_table": table,
            "row_count": row_count, "header": header}


def stop_upload(upload_id: int, user: str, message: str, *, status: str = "INVALID") -> None:
    """Record why the upload stops: the user's file (INVALID) or the platform (FAILED)."""
    with db.transaction() as cur:
        if status == "INVALID":
            cur.execute(
                "INSERT INTO intake.row_errors (upload_id, rule, message) VALUES (%s, 'file', %s)", (upload_id, message)
            )
        inputs.set_status(cur, upload_id, status, message=message)
        audit.record(cur, actor=user, action=f"upload.{status.lower()}", object_type="upload", object_id=upload_id,
                     outcome=status, details={"message": message})


def stop_request(request_id: int, user: str, message: str, *, status: str) -> None:
    """Record why the request stops: its parameters (INVALID) or the platform (FAILED)."""
    with db.transaction() as cur:
        inputs.set_request_status(cur, request_id, status, message=message)
        audit.record(cur, actor=user, action=f"request.{status.lower()}", object_type="request",
                     object_id=request_id, outcome=status, details={"message": message})
