"""Choosing a plan's beneficiaries by a file of ids: the file is kept as an upload, every row checked at once.

The file has one id column: `beneficiary_id`, `individual_id` (INDIVIDUAL plans) or
`household_code` (GROUP plans). A row naming nobody in the plan refuses the file, with
every such row in the error report.
"""

from __future__ import annotations

from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import audit, config, db
from benefitflow.core.columns import as_uuid
from benefitflow.core.errors import RequestError, WorkflowError
from benefitflow.programmes.plans import Plan
from benefitflow.workflows import inputs, suites
from benefitflow.workflows.inputs import FileSpec
from benefitflow.workflows.intake import take_in_file

ID_COLUMNS = ("beneficiary_id", "individual_id", "household_code")
SPEC = FileSpec(kind="beneficiary_ids", required_columns=(), optional_columns=ID_COLUMNS)
SHOWN_ROWS = 5


def select_from_file(
    cur: psycopg2.extensions.cursor, request_id: int, plan: Plan, file: str, user: str,
) -> dict[str, Any]:
    """Record and stage the file, check every id, select the beneficiaries; return what the checker sees."""
    cur.execute("SELECT dag_id, run_id, kind FROM intake.requests WHERE request_id = %s", (request_id,))
    dag_id, run_id, operation = cur.fetchone()
    try:
        upload = take_in_file(spec=SPEC, file=file, user=user, dag_id=dag_id, run_id=run_id, plan_code=plan.code,
                             operation=operation)
    except WorkflowError as exc:
        raise RequestError(str(exc)) from exc
    upload_id, name, staged = int(upload["upload_id"]), upload["file_name"], upload["staged_table"]
    column = _id_column(upload["header"], plan)
    if column is None:
        refuse_file(upload_id, name, user, f"file {name}: needs one id column: beneficiary_id, or "
                                       f"{'household_code' if plan.type == 'GROUP' else 'individual_id'} for a "
                                       f"{plan.type} plan (found {', '.join(upload['header'])})")
    matched = "FROM intake.{staged} s LEFT JOIN programmes.beneficiaries b ON b.plan_code = {plan} AND {match}"
    parts = {"staged": sql.Identifier(staged), "plan": sql.Literal(plan.code), "match": _match(column)}
    unknown = sql.SQL("SELECT {upload}, s.row_number, {column}, 'id:not_in_plan', s.{id}, {message} " + matched +
                      " WHERE b.beneficiary_id IS NULL").format(
        upload=sql.Literal(upload_id), column=sql.Literal(column), id=sql.Identifier(column),
        message=sql.Literal(f"no beneficiary of plan {plan.code} with this {column}"), **parts)
    cur.execute(sql.SQL("SELECT count(*) FROM ({}) unknown").format(unknown))
    if cur.fetchone()[0]:
        refuse_file(upload_id, name, user, f"file {name}: ids that name no beneficiary of plan {plan.code}", unknown)
    cur.execute(sql.SQL("INSERT INTO intake.request_selection (request_id, beneficiary_id, row_number)"
                        " SELECT DISTINCT ON (b.beneficiary_id) {request}, b.beneficiary_id, s.row_number " + matched +
                        " ORDER BY b.beneficiary_id, s.row_number").format(request=sql.Literal(request_id), **parts))
    selected = cur.rowcount
    inputs.drop_staged(cur, staged)
    inputs.set_status(cur, upload_id, "WAITING_FOR_APPROVAL", valid_row_count=upload["row_count"], invalid_row_count=0)
    return {"file": name, "upload_id": upload_id, "rows_in_file": upload["row_count"],
            "beneficiaries_selected": selected}


def _match(column: str) -> sql.Composable:
    """The beneficiary a row names. Ids are compared as uuids, so that a few rows are found through the index."""
    if column == "household_code":
        return sql.SQL("b.household_code = btrim(s.household_code)")
    given = sql.SQL("btrim(s.{})").format(sql.Identifier(column))
    return sql.SQL("b.{} = {}").format(sql.Identifier(column), as_uuid(given))


def _id_column(header: list[str], plan: Plan) -> str | None:
    allowed = ("beneficiary_id", "household_code" if plan.type == "GROUP" else "individual_id")
    given = [column for column in header if column in ID_COLUMNS]
    return given[0] if len(given) == 1 and given[0] in allowed else None


def refuse_file(upload_id: int, name: str, user: str, message: str, rows: sql.Composable | None = None) -> None:
    """Keep why the file is refused (upload INVALID, errors per row, the report), then stop the request."""
    report = config.error_report(upload_id)
    with db.transaction() as cur:
        if rows is not None:
            cur.execute(sql.SQL("INSERT INTO intake.row_errors (upload_id, row_number, column_name, rule, value,"
                                " message) ") + rows)
            cur.execute("SELECT row_number FROM intake.row_errors WHERE upload_id = %s ORDER BY 1 LIMIT %s",
                        (upload_id, SHOWN_ROWS))
            message += f" (rows {', '.join(str(row) for (row,) in cur.fetchall())}...; full report: {report})"
        else:
            cur.execute("INSERT INTO intake.row_errors (upload_id, rule, message) VALUES (%s, 'file', %s)",
                        (upload_id, message))
        suites.write_error_report(cur, upload_id, name, report)
        inputs.set_status(cur, upload_id, "INVALID", message=message, error_report_path=str(report))
        audit.record(cur, actor=user, action="upload.invalid", object_type="upload", object_id=upload_id,
                     outcome="INVALID", details={"message": message})
    raise RequestError(message)
