"""Download of a run's whole proposal as CSV, from Airflow's api-server (audited):

    GET /benefitflow/proposals/{dag_id}/{upload or request id}.csv

What the checker approves, row by row: the proposal model's rows for that upload or request, written by
PostgreSQL (`COPY`) into a file of the outbox's own, opened and removed at once, then streamed. It holds
personal data, so it goes to those the upload's files go to (`upload_files.personal_files_refusal`: the
maker, the checker group of the operation, the operators), who must also be able to read the DAG. Text
cells are written so that no spreadsheet runs them as formulas.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from psycopg2 import sql

from benefitflow.core import audit, config, db, file_store
from benefitflow.platform.upload_files import personal_files_refusal, streamed
from benefitflow.workflows import catalogue
from benefitflow.workflows.proposal_digest import ProposalRef

router = APIRouter()
TEXT_TYPES = ("text", "character varying", "character", "jsonb", "json", "USER-DEFINED", "ARRAY")


@router.get("/proposals/{dag_id}/{key}.csv")
def download(dag_id: str, key: int, user: GetUserDep) -> StreamingResponse:
    declared = catalogue.declared().get(dag_id)
    if declared is None:
        raise HTTPException(404, f"no workflow {dag_id!r}")
    workflow = declared.workflow
    proposal = workflow.proposal_for({"upload_id": key} if workflow.takes_file else {"request_id": key})
    target = config.outbox_folder("reports") / f".proposal-{uuid.uuid4().hex}.csv"
    with db.transaction() as cur:
        maker = _maker(cur, dag_id, proposal)
        refusal = _refusal(user, dag_id, proposal, maker, workflow.operation)
        if refusal is None:
            try:
                with file_store.created_binary(target) as handle:
                    cur.copy_expert(_copy(cur, proposal), handle)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        audit.record(cur, actor=user.get_name(), action="proposal.download", object_type=proposal.input_kind,
                     object_id=key, outcome="REFUSED" if refusal else "DOWNLOADED",
                     details={"dag_id": dag_id, **({"reason": refusal} if refusal else {})})
    if refusal is not None:  # the refusal is in the audit trail (committed) before the answer goes out
        raise HTTPException(403 if maker else 404, refusal)
    name = f"{dag_id}-{proposal.input_kind}{key}-proposal.csv"
    size = target.stat().st_size
    handle = _opened_and_removed(target)
    return StreamingResponse(streamed(handle, closed_after=handle), media_type="text/csv",
                             headers={"Content-Disposition": f"attachment; filename*=utf-8''{quote(name)}",
                                      "Content-Length": str(size)})


def _maker(cur: Any, dag_id: str, proposal: ProposalRef) -> str | None:
    """Who handed in the upload or asked for the request, if it is this DAG's."""
    table, who = ("requests", "requested_by") if proposal.is_request else ("uploads", "uploaded_by")
    cur.execute(sql.SQL("SELECT {} FROM intake.{} WHERE {} = %s AND dag_id = %s").format(
        sql.Identifier(who), sql.Identifier(table), sql.Identifier(proposal.key_column)), (proposal.key, dag_id))
    found = cur.fetchone()
    return None if found is None else str(found[0])


def _refusal(user: Any, dag_id: str, proposal: ProposalRef, maker: str | None, operation: str) -> str | None:
    if maker is None:
        return f"no {proposal.input_name} of {dag_id}"
    return personal_files_refusal(user, f"the proposal of {proposal.input_name}", dag_id=dag_id, maker=maker,
                                  operation=operation)


def _copy(cur: Any, proposal: ProposalRef) -> sql.Composed:
    schema, table = proposal.table.split(".")
    cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s"
                " AND table_name = %s ORDER BY ordinal_position", (schema, table))
    columns = cur.fetchall()
    cells = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(file_store.spreadsheet_safe(sql.Identifier(column),
                                                               "string" if kind in TEXT_TYPES else "number"),
                                   sql.Identifier(column))
        for column, kind in columns)
    order = sql.SQL("row_number") if any(column == "row_number" for column, _ in columns) else sql.SQL("1")
    return sql.SQL("COPY (SELECT {} FROM {} WHERE {} = {} ORDER BY {}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
        cells, sql.Identifier(schema, table), sql.Identifier(proposal.key_column), sql.Literal(proposal.key), order)


def _opened_and_removed(path: Path) -> BinaryIO:
    """The written proposal, open, its name already gone: nothing is left in the outbox, whether or not the
    download is read to its end."""
    try:
        return path.open("rb")
    finally:
        path.unlink(missing_ok=True)



