"""Download of an upload's original file and error report, from Airflow's api-server (audited).

    GET /benefitflow/uploads/{upload_id}/original
    GET /benefitflow/uploads/{upload_id}/error-report

The caller is an Airflow user (JWT bearer or the UI's session cookie) who may read the DAG
that received the upload. Files are served only from inside the outbox; every download
is in the audit trail.
"""

from __future__ import annotations

from pathlib import Path

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from psycopg2 import sql

from benefitflow import audit, config, db

COLUMNS = {"original": "stored_path", "error-report": "error_report_path"}

app = FastAPI(title="benefitflow upload files", description=__doc__)


@app.get("/uploads/{upload_id}/{which}")
def download(upload_id: int, which: str, user: GetUserDep) -> FileResponse:
    if which not in COLUMNS:
        raise HTTPException(404, f"no such file kind {which!r}: use original or error-report")
    with db.transaction() as cur:
        cur.execute(sql.SQL("SELECT dag_id, file_name, {} FROM intake.uploads WHERE upload_id = %s").format(
            sql.Identifier(COLUMNS[which])), (upload_id,))
        found = cur.fetchone()
        if found is None:
            raise HTTPException(404, f"no upload {upload_id}")
        dag_id, file_name, stored = found
        if not get_auth_manager().is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id)):
            raise HTTPException(403, f"you may not read the DAG {dag_id} that received upload {upload_id}")
        path = _inside_outbox(stored)
        audit.record(cur, actor=user.get_name(), action=f"upload.download_{which.replace('-', '_')}",
                     object_type="upload", object_id=upload_id, outcome="DOWNLOADED", details={"path": str(path)})
    name = file_name if which == "original" else f"upload-{upload_id:08d}-errors.csv"
    return FileResponse(path, media_type="text/csv", filename=name)


def _inside_outbox(stored: str | None) -> Path:
    outbox = config.outbox()
    path = Path(stored).resolve() if stored else None
    if path is None or not path.is_relative_to(outbox) or not path.is_file():
        raise HTTPException(404, "the file is not available")
    return path
