"""Download of an upload's original file, error report and validation suite, from Airflow's api-server (audited).

    GET /benefitflow/uploads/{upload_id}/original
    GET /benefitflow/uploads/{upload_id}/error-report
    GET /benefitflow/uploads/{upload_id}/suite        (the Great Expectations suite it was checked with)

The files hold personal data (names, national ids, phones), so they go only to those who
handled the upload: its maker, the checker group of its operation, and the operators
(`DataEngineer`, `Admin`) — who must also be able to read the DAG that received it. Anyone
else gets 403. Files are served only from inside the outbox, opened as inbox files are (no link
followed anywhere on the path, a regular file with one link: the task user, who owns the outbox,
could otherwise put a link to the services' secrets where a report was), and streamed from that
descriptor; every download, and every refusal, is in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any, BinaryIO
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from benefitflow.core import audit, config, db, file_store
from benefitflow.workflows.approve import policy_for

KINDS = ("original", "error-report", "suite")
MEDIA_TYPES = {"original": "text/csv", "error-report": "text/csv", "suite": "application/json"}
OPERATOR_ROLES = ("DataEngineer", "Admin")

router = APIRouter()


@router.get("/uploads/{upload_id}/{which}")
def download(upload_id: int, which: str, user: GetUserDep) -> StreamingResponse:
    if which not in KINDS:
        raise HTTPException(404, f"no such file kind {which!r}: use {', '.join(KINDS)}")
    with db.transaction() as cur:
        cur.execute("SELECT dag_id, file_name, uploaded_by, coalesce(operation, dag_id), stored_path, error_report_path"
                    " FROM intake.uploads WHERE upload_id = %s", (upload_id,))
        found = cur.fetchone()
        if found is None:
            raise HTTPException(404, f"no upload {upload_id}")
        dag_id, file_name, maker, operation, original, report = found
        stored = {"original": original, "error-report": report, "suite": str(config.upload_suite(upload_id))}[which]
        refusal = personal_files_refusal(user, f"upload {upload_id}", dag_id=dag_id, maker=maker, operation=operation)
        opened = ExitStack()
        handed_in = None if refusal else _open_in_outbox(stored, opened)
        audit.record(cur, actor=user.get_name(), action=f"upload.download_{which.replace('-', '_')}",
                     object_type="upload", object_id=upload_id, outcome="REFUSED" if refusal else "DOWNLOADED",
                     details={"reason": refusal} if refusal else {"path": stored})
    if handed_in is None:  # the refusal is in the audit trail (committed) before the answer goes out
        raise HTTPException(403, refusal)
    name = {"original": file_name, "error-report": config.error_report(upload_id).name,
            "suite": config.upload_suite(upload_id).name}[which]
    return StreamingResponse(streamed(handed_in.handle, closed_after=opened), media_type=MEDIA_TYPES[which],
                             headers={"Content-Disposition": f"attachment; filename*=utf-8''{quote(name)}",
                                      "Content-Length": str(handed_in.size_bytes)})


def personal_files_refusal(user: Any, what: str, *, dag_id: str, maker: str, operation: str) -> str | None:
    """Why `user` may not download `what` (files of a run of `dag_id` that hold personal data); None if they may."""
    if not get_auth_manager().is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id)):
        return f"you may not read the DAG {dag_id} that received {what}"
    if not may_see_upload_files(user.get_name(), role_names(user), maker=maker, operation=operation):
        return (f"{what} holds personal data: only its maker, the checkers of {operation}, "
                f"{' and '.join(OPERATOR_ROLES)} may download it")
    return None


def may_see_upload_files(username: str, roles: set[str], *, maker: str, operation: str) -> bool:
    """The maker, the operation's checker group and the operators; nobody else, whatever else they may read."""
    if roles & set(OPERATOR_ROLES) or username == maker:
        return True
    try:
        return policy_for(operation).group in roles
    except (ValueError, ImportError):  # no checker group found for the operation: only its maker and operators
        return False


def role_names(user: Any) -> set[str]:
    return {role.name for role in getattr(user, "roles", None) or ()}


def _open_in_outbox(stored: str | None, opened: ExitStack) -> file_store.HandedIn:
    try:  # no path recorded (no report written) is refused like a missing file
        return opened.enter_context(file_store.open_in_outbox(stored or "", config.outbox()))
    except file_store.InboxError as exc:
        raise HTTPException(404, "the file is not available") from exc


def streamed(handle: BinaryIO, *, closed_after: AbstractContextManager[Any]) -> Iterator[bytes]:
    """A download's bytes, read as they are sent; `closed_after` (the file, or what opened it) closes at the end."""
    with closed_after:
        while chunk := handle.read(1 << 16):
            yield chunk
