"""Download of an upload's original file and error report, from Airflow's api-server (audited).

    GET /benefitflow/uploads/{upload_id}/original
    GET /benefitflow/uploads/{upload_id}/error-report

The files hold personal data (names, national ids, phones), so they go only to those who
handled the upload: its maker, the checker group of its operation, and the operators
(`DataEngineer`, `Admin`) — who must also be able to read the DAG that received it. Anyone
else gets 403. Files are served only from inside the outbox; every download, and every
refusal, is in the audit trail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from psycopg2 import sql

from benefitflow import audit, config, db
from benefitflow.approval import policy_for

COLUMNS = {"original": "stored_path", "error-report": "error_report_path"}
OPERATOR_ROLES = ("DataEngineer", "Admin")

app = FastAPI(title="benefitflow upload files", description=__doc__)


@app.get("/uploads/{upload_id}/{which}")
def download(upload_id: int, which: str, user: GetUserDep) -> FileResponse:
    if which not in COLUMNS:
        raise HTTPException(404, f"no such file kind {which!r}: use original or error-report")
    with db.transaction() as cur:
        cur.execute(sql.SQL("SELECT dag_id, file_name, uploaded_by, coalesce(operation, dag_id), {}"
                            " FROM intake.uploads WHERE upload_id = %s").format(sql.Identifier(COLUMNS[which])),
                    (upload_id,))
        found = cur.fetchone()
        if found is None:
            raise HTTPException(404, f"no upload {upload_id}")
        dag_id, file_name, maker, operation, stored = found
        refusal = _refusal(user, upload_id, dag_id=dag_id, maker=maker, operation=operation)
        path = None if refusal else _inside_outbox(stored)
        audit.record(cur, actor=user.get_name(), action=f"upload.download_{which.replace('-', '_')}",
                     object_type="upload", object_id=upload_id, outcome="REFUSED" if refusal else "DOWNLOADED",
                     details={"reason": refusal} if refusal else {"path": str(path)})
    if path is None:  # the refusal is in the audit trail (committed) before the answer goes out
        raise HTTPException(403, refusal)
    name = file_name if which == "original" else f"upload-{upload_id:08d}-errors.csv"
    return FileResponse(path, media_type="text/csv", filename=name)


def _refusal(user: Any, upload_id: int, *, dag_id: str, maker: str, operation: str) -> str | None:
    if not get_auth_manager().is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id)):
        return f"you may not read the DAG {dag_id} that received upload {upload_id}"
    if not may_see_upload_files(user.get_name(), _role_names(user), maker=maker, operation=operation):
        return (f"upload {upload_id}'s files hold personal data: only its maker, the checkers of {operation}, "
                f"{' and '.join(OPERATOR_ROLES)} may download them")
    return None


def may_see_upload_files(username: str, roles: set[str], *, maker: str, operation: str) -> bool:
    """The maker, the operation's checker group and the operators; nobody else, whatever else they may read."""
    if roles & set(OPERATOR_ROLES) or username == maker:
        return True
    try:
        return policy_for(operation).group in roles
    except ValueError:  # an operation no checker group answers: only its maker and the operators
        return False


def _role_names(user: Any) -> set[str]:
    return {role.name for role in getattr(user, "roles", None) or ()}


def _inside_outbox(stored: str | None) -> Path:
    outbox = config.outbox()
    path = Path(stored).resolve() if stored else None
    if path is None or not path.is_relative_to(outbox) or not path.is_file():
        raise HTTPException(404, "the file is not available")
    return path
