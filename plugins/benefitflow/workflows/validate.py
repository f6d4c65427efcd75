"""Step 2, validate: an upload's rows by its GX suite and SQL checks (errors kept per row and
column, with a report); a request's parameters by its own check. A refusal keeps everything."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions

from benefitflow.core import audit, config, db
from benefitflow.core.errors import RequestError, WorkflowError
from benefitflow.workflows import inputs, suites
from benefitflow.workflows.declaration import FileChecks, FormCheck, Options, Taken, Workflow
from benefitflow.workflows.intake import stop_request, stop_upload

ON_INVALID_ROWS = ("reject_file", "skip_invalid_rows")
MAX_ERRORS_IN_MESSAGE = 5


def validate_step(*, workflow: Workflow, taken: Taken, options: Options, user: str) -> dict[str, Any]:
    if isinstance(workflow.validate, FileChecks):
        return _validate_upload(workflow.validate, taken, options, user)
    return _validate_request(workflow.validate, taken, options, user)


def _validate_request(checks: FormCheck, request: Taken, options: Options, user: str) -> dict[str, Any]:
    request_id = int(request["request_id"])
    try:
        with db.transaction() as cur:
            inputs.select_again(cur, request_id)
            validated = checks.check(cur, request_id, options, user)
            inputs.set_request_status(cur, request_id, "RECEIVED", document=validated)
            inputs.note_selection(cur, request_id)
    except RequestError as exc:
        stop_request(request_id, user, str(exc), status="INVALID")
        raise WorkflowError(f"{request['request']}: {exc}") from exc
    return validated


def _validate_upload(checks: FileChecks, upload: Taken, options: Options, user: str) -> dict[str, Any]:
    on_invalid_rows = options.get("on_invalid_rows", "reject_file")
    if on_invalid_rows not in ON_INVALID_ROWS:
        raise WorkflowError(f"on_invalid_rows must be one of {ON_INVALID_ROWS}, not {on_invalid_rows!r}")
    # Two attempts at once (a worker thought lost while its attempt still runs) take turns: each drops and makes the
    # tables it checks.
    with db.session_lock(f"benefitflow.validate:{upload['upload_id']}"):
        return _check_upload(checks, upload, options, user, on_invalid_rows)


def _check_upload(checks: FileChecks, upload: Taken, options: Options, user: str,
                  on_invalid_rows: str) -> dict[str, Any]:
    upload_id, file_name = upload["upload_id"], upload["file_name"]
    try:
        with db.transaction() as cur:
            if inputs.restage_if_lost(cur, upload):
                audit.record(cur, actor=user, action="upload.restaged", object_type="upload", object_id=upload_id,
                             outcome="RESTAGED", details={"rows": upload["row_count"], "reason": "staged rows lost"})
            else:  # what an earlier attempt of this step made of them (it was cut short, or cleared)
                inputs.drop_staged(cur, upload["staged_table"], derived_only=True)
        table = upload["staged_table"]
        if checks.prepare is not None:
            with db.transaction() as cur:
                table = checks.prepare(cur, upload, options)
        suite = checks.suite_for(upload, options)
        suites.write_suite(suite, config.upload_suite(upload_id))
        results = suites.run_suite(config.database_url(), "intake", table, suite)
    except Exception as exc:
        stop_upload(upload_id, user, f"validation could not run: {exc}", status="FAILED")
        raise
    report_path = config.error_report(upload_id)
    with db.transaction() as cur:
        blocking_file_errors = suites.record_errors(cur, upload_id, results, "intake", table)
        if checks.check is not None:
            checks.check(cur, upload, options)
        summary = suites.summarise(cur, upload_id, upload["row_count"], blocking_file_errors)
        suites.write_error_report(cur, upload_id, file_name, report_path)
        refusal = _refusal(summary, on_invalid_rows)
        status = "INVALID" if refusal else "WAITING_FOR_APPROVAL"
        inputs.set_status(
            cur, upload_id, status, message=refusal, valid_row_count=summary.valid_row_count,
            invalid_row_count=summary.invalid_row_count, error_report_path=str(report_path),
        )
        first_errors = _first_errors(cur, upload_id)
        if refusal:
            inputs.drop_staged(cur, upload["staged_table"])
        audit.record(cur, actor=user, action="upload.validated", object_type="upload", object_id=upload_id,
                     outcome=status, details={"invalid_rows": summary.invalid_row_count,
                                              "rules": summary.errors_by_rule, "warnings": summary.warnings_by_rule})
    if refusal:
        raise WorkflowError(f"file {file_name}: {refusal}. {first_errors} Full report: {report_path} "
                            f"(download: {config.upload_file_url(upload_id, 'error-report')})")
    return {
        "rows_in_file": summary.row_count,
        "valid_rows": summary.valid_row_count,
        "invalid_rows": summary.invalid_row_count,
        "invalid_by_rule": summary.errors_by_rule,
        "warnings_by_rule": summary.warnings_by_rule,
        "error_report": config.upload_file_url(upload_id, "error-report"),
        "checked_with": config.upload_file_url(upload_id, "suite"),
    }


def _refusal(summary: suites.ValidationSummary, on_invalid_rows: str) -> str | None:
    if summary.blocking_file_errors:
        return "the file as a whole fails: " + "; ".join(summary.blocking_file_errors)
    if summary.invalid_row_count and on_invalid_rows == "reject_file":
        return f"{summary.invalid_row_count} of {summary.row_count} rows are invalid and on_invalid_rows is reject_file"
    if summary.valid_row_count == 0:
        return "no valid rows"
    return None


def _first_errors(cur: psycopg2.extensions.cursor, upload_id: int) -> str:
    cur.execute(
        "SELECT row_number, column_name, message, value FROM intake.row_errors WHERE upload_id = %s"
        " AND severity = 'critical' ORDER BY row_number NULLS FIRST, column_name LIMIT %s",
        (upload_id, MAX_ERRORS_IN_MESSAGE),
    )
    return " ".join(
        f"Row {row}, column {column}: {message} (value {'empty' if value is None else repr(value)})."
        for row, column, message, value in cur.fetchall()
    )
