"""Makers hand in a CSV from the browser (the Upload page in Airflow's navigation) or from a script.

    GET  /benefitflow/upload                the page: one form per upload workflow the user may start
    POST /benefitflow/upload/{dag_id}       the page's form (multipart): an HTML answer linking the run
    POST /benefitflow/api/uploads/{dag_id}  the same for scripts: 201 and the run as JSON

The file is streamed into the inbox under a name the platform chooses (`file_receiver`), refused at
once if it is not CSV text, larger than the limit (BENEFITFLOW_WEB_UPLOAD_MAX_BYTES, 200 MB by
default) or already taken in for the same workflow (and plan); then the workflow's run is started
through Airflow's own REST API with the user's own credentials, so Airflow checks that the user may
start it and validates the options against the DAG's parameters, and the run's maker is the user.
From there the run is the same six steps as any other: intake records the file (sha256, who, when).
Who may not start the workflow gets 403 before a byte is read; every hand-in and refusal is audited.
"""

from __future__ import annotations

import contextlib
import html
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.configuration import conf
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from benefitflow.core import audit, config, db
from benefitflow.core.errors import UserError
from benefitflow.platform.file_receiver import FORM_OVERHEAD, Received, ReceiveError, receive, too_large
from benefitflow.workflows import catalogue
from benefitflow.workflows.dag import params_of
from benefitflow.workflows.declaration import FileIntake, Workflow
from benefitflow.workflows.inputs import WEB_FILE_PREFIX, same_file_refusal

router = APIRouter()
TOKEN_COOKIE = "_token"  # Airflow's UI session (airflow.api_fastapi.auth.managers.base_auth_manager)
DOMAINS = ("registry", "programmes", "grievances", "payments", "selftest")  # the order the page lists them in
UNCLAIMED_SECONDS = 24 * 3600  # a web file no run took in (its run deleted, or a crash mid-receive) is removed


@dataclass(frozen=True)
class Started:
    dag_id: str
    dag_run_id: str
    received: Received

    def as_json(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "dag_run_id": self.dag_run_id, "file": self.received.inbox_name,
                "client_file_name": self.received.client_name, "sha256": self.received.sha256,
                "size_bytes": self.received.size_bytes, "run_url": f"{config.api_base_url()}/{self.run_path}"}

    @property
    def run_path(self) -> str:
        """The run's page in Airflow's UI, below its base address."""
        return f"dags/{quote(self.dag_id)}/runs/{quote(self.dag_run_id)}"


def upload_workflows() -> dict[str, Workflow]:
    """Every workflow that takes in a file, by DAG id: the registry's first, the self-tests last."""
    def place(item: tuple[str, catalogue.Declared]) -> tuple[int, str]:
        domain = item[1].module.split(".")[1]
        return (DOMAINS.index(domain) if domain in DOMAINS else len(DOMAINS), item[0])

    return {dag_id: entry.workflow for dag_id, entry in sorted(catalogue.declared().items(), key=place)
            if entry.workflow.takes_file}


def may_start(user: Any, dag_id: str) -> bool:
    return get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=dag_id), user=user)


# -- the page ----------------------------------------------------------------------------------------
@router.get("/upload", response_class=HTMLResponse)
def page(user: GetUserDep) -> HTMLResponse:
    allowed = [workflow for dag_id, workflow in upload_workflows().items() if may_start(user, dag_id)]
    if not allowed:
        audit_refusal(user.get_name(), "", "may start no upload workflow: the Upload page refused")
        return HTMLResponse(_page("Upload", "<p class='refused'>You may not start any upload workflow: "
                                            "the Upload page is for makers.</p>"), status_code=403)
    _sweep_taken_in()
    with db.transaction() as cur:
        forms = "".join(_form(workflow, {name: offer(cur) for name, offer in _intake(workflow).choices.items()},
                              opened=index == 0) for index, workflow in enumerate(allowed))
    intro = (f"<p>Choose the workflow, the CSV file (at most {config.web_upload_max_bytes():,} bytes) and its "
             "options. The file goes into the inbox under a name the platform chooses, and the workflow starts with "
             "you as its maker: a checker approves what it proposes.</p>")
    return HTMLResponse(_page("Upload a file", intro + forms))


@router.post("/upload/{dag_id}", response_class=HTMLResponse)
async def upload_from_page(dag_id: str, request: Request, user: GetUserDep) -> HTMLResponse:
    try:
        started = await hand_in(dag_id, request, user)
    except HTTPException as exc:
        return HTMLResponse(_page("Upload refused", f"<p class='refused'>{html.escape(str(exc.detail))}</p>"
                                                    "<p><a href='../upload'>Back to the Upload page</a></p>"),
                            status_code=exc.status_code)
    run_link = f"../../{started.run_path}"  # from /benefitflow/upload/<dag_id>
    received = started.received
    body = (f"<p class='started'>{html.escape(received.client_name)} ({received.size_bytes:,} bytes, sha256 "
            f"<code>{received.sha256[:12]}…</code>) is in the inbox as "
            f"<code>{html.escape(received.inbox_name)}</code>; "
            f"run <code>{html.escape(started.dag_run_id)}</code> of <code>{html.escape(dag_id)}</code> started.</p>"
            f"<p><a id='run-link' href='{html.escape(run_link)}' target='_top' onclick='return openInAirflow(this)'>"
            "Open the run</a> · "
            "<a href='../upload'>Upload another file</a></p>")
    return HTMLResponse(_page("Upload received", body), status_code=201)


@router.post("/api/uploads/{dag_id}", status_code=201)
async def upload_from_script(dag_id: str, request: Request, user: GetUserDep) -> JSONResponse:
    started = await hand_in(dag_id, request, user)
    return JSONResponse(started.as_json(), status_code=201)


# -- handing in ----------------------------------------------------------------------------------------
async def hand_in(dag_id: str, request: Request, user: Any) -> Started:
    """Receive the file into the inbox and start the workflow's run as `user`; HTTPException if refused."""
    name = user.get_name()
    workflow = upload_workflows().get(dag_id)
    refusal = _refusal_before_reading(dag_id, workflow, request, user)
    if refusal is not None:
        status, reason = refusal
        await run_in_threadpool(audit_refusal, name, dag_id, reason)
        raise HTTPException(status, reason)
    assert workflow is not None
    if name in _receiving:
        reason = "you are already handing in a file: wait until it is in, then hand in the next"
        await run_in_threadpool(audit_refusal, name, dag_id, reason)
        raise HTTPException(429, reason)
    _receiving.add(name)
    try:
        return await _received_and_started(dag_id, workflow, request, name)
    finally:
        _receiving.discard(name)


async def _received_and_started(dag_id: str, workflow: Workflow, request: Request, name: str) -> Started:
    await run_in_threadpool(_sweep_taken_in)
    try:
        received = await receive(request.stream(), request.headers.get("content-type", ""),
                                 target_dir=config.inbox(), dag_id=dag_id, limit=config.web_upload_max_bytes())
    except ReceiveError as exc:
        await run_in_threadpool(audit_refusal, name, dag_id, str(exc))
        raise HTTPException(exc.status, str(exc)) from exc
    except BaseException as exc:  # the client went away, or the platform failed: audited, then as it is
        await run_in_threadpool(audit_refusal, name, dag_id, f"not received: {type(exc).__name__}")
        raise
    run_may_exist = False
    try:
        options = _options(workflow, received.fields)
        await run_in_threadpool(_record_hand_in, workflow, options, received, name)
        run_may_exist = True  # from here a run may have been created even if no answer comes back
        dag_run_id = await _start_run(request, dag_id, {**options, "file": received.inbox_name})
    except BaseException as exc:
        if not run_may_exist or isinstance(exc, HTTPException) and exc.status_code < 500:
            (config.inbox() / received.inbox_name).unlink(missing_ok=True)
        reason = exc.detail if isinstance(exc, HTTPException) else f"{type(exc).__name__}: {exc}"
        await run_in_threadpool(audit_refusal, name, dag_id, str(reason), received)
        if isinstance(exc, UserError):
            raise HTTPException(400, str(exc)) from exc
        raise
    await run_in_threadpool(_audit_started, name, dag_id, dag_run_id, received)
    return Started(dag_id, dag_run_id, received)


# Who is handing in a file now, in this api-server process: one file at a time each (per process: with several
# api-server workers, one per worker).
_receiving: set[str] = set()


def _refusal_before_reading(dag_id: str, workflow: Workflow | None, request: Request,
                            user: Any) -> tuple[int, str] | None:
    if workflow is None:
        return 404, f"no upload workflow {dag_id!r}: choose one of {', '.join(upload_workflows())}"
    if not may_start(user, dag_id):
        return 403, f"you may not start {dag_id}: uploads are for the makers who may start it"
    if "authorization" in request.headers and not _bearer(request):
        return 401, "send a bearer token (Authorization: Bearer ...), as Airflow's REST API takes it"
    if not _bearer(request) and not _same_origin(request):
        return 403, "a form posted from another site is refused: upload from the Upload page"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > config.web_upload_max_bytes() + FORM_OVERHEAD:
        return 413, too_large(config.web_upload_max_bytes())
    return None


def _same_origin(request: Request) -> bool:
    """A browser's post carries the page's origin: only this server's own page may post with its session cookie
    (this server as its users reach it: AIRFLOW__API__BASE_URL, else the Host it was asked for)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    expected = urlsplit(config.api_base_url()).netloc or request.headers.get("host")
    return origin is not None and urlsplit(origin).netloc == expected


def _options(workflow: Workflow, fields: dict[str, str]) -> dict[str, str]:
    """The form's fields as the run's parameters: only the workflow's own (never `file`), empty ones left out."""
    known = set(params_of(workflow)) - {"file"}
    if unknown := sorted(set(fields) - known):
        raise HTTPException(400, f"{', '.join(unknown)}: not an option of this workflow ({', '.join(sorted(known))})")
    return {key: value.strip() for key, value in fields.items() if value.strip()}


def _record_hand_in(workflow: Workflow, options: dict[str, str], received: Received, user: str) -> None:
    """Refuse a file already taken in for this workflow (and plan); else keep who handed it in (intake.hand_ins:
    only their run takes it in)."""
    intake = _intake(workflow)
    with db.transaction() as cur:
        refusal = same_file_refusal(cur, received.client_name, kind=intake.spec_for(options).kind,
                                    plan_code=intake.plan_of(options), sha256=received.sha256)
        if refusal is not None:
            raise HTTPException(409, refusal)
        cur.execute("INSERT INTO intake.hand_ins (file_name, dag_id, handed_in_by, sha256, size_bytes)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (received.inbox_name, workflow.dag_id, user, received.sha256, received.size_bytes))


def _sweep_taken_in() -> None:
    """Remove from the inbox (each time the page is opened or a file handed in) the web files intake has taken in
    (it keeps its own copy), and those no run took in within a day: no personal data is left lying in a shared
    folder, and the inbox does not fill up. A web file is taken in once: to run it again, hand it in again."""
    inbox = config.inbox()
    found = {path.name: path for path in inbox.glob(f"{WEB_FILE_PREFIX}*.csv")}
    if not found:
        return
    with db.transaction() as cur:
        cur.execute("SELECT h.file_name FROM intake.hand_ins h JOIN intake.uploads u ON u.file_name = h.file_name"
                    " AND u.sha256 = h.sha256 AND u.uploaded_by = h.handed_in_by WHERE h.file_name = ANY(%s)",
                    (list(found),))
        taken_in = {name for (name,) in cur.fetchall()}
    stale = time.time() - UNCLAIMED_SECONDS
    for name, path in found.items():
        with contextlib.suppress(FileNotFoundError):
            if name in taken_in or path.stat().st_mtime < stale:
                path.unlink()


async def _start_run(request: Request, dag_id: str, conf_: dict[str, str]) -> str:
    """Airflow's REST API starts the run, with the caller's own token: its checks, its maker. Straight to this
    api-server (no proxy from the environment: the token goes nowhere else)."""
    token = _bearer(request) or request.cookies.get(TOKEN_COOKIE, "")
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        response = await client.post(f"{_api_root()}/api/v2/dags/{quote(dag_id)}/dagRuns",
                                     json={"logical_date": None, "conf": conf_},
                                     headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:500]
        raise HTTPException(response.status_code if response.status_code < 500 else 502,
                            f"the run could not be started: {detail}")
    return str(response.json()["dag_run_id"])


def _bearer(request: Request) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _api_root() -> str:
    """This api-server, as the process itself reaches it (not as a proxy in front of it shows it)."""
    host = conf.get("api", "host", fallback="127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)
    path = urlsplit(config.api_base_url()).path.rstrip("/")
    return f"http://{host}:{conf.getint('api', 'port', fallback=8080)}{path}"


def _intake(workflow: Workflow) -> FileIntake:
    assert isinstance(workflow.intake, FileIntake)
    return workflow.intake


# -- the audit trail -----------------------------------------------------------------------------------
def audit_refusal(user: str, dag_id: str, reason: str, received: Received | None = None) -> None:
    details: dict[str, Any] = {"dag_id": dag_id, "reason": reason}
    if received is not None:
        details |= {"client_file_name": received.client_name, "sha256": received.sha256,
                    "size_bytes": received.size_bytes}
    with db.transaction() as cur:
        audit.record(cur, actor=user, action="upload.hand_in", object_type="dag" if dag_id else "page",
                     object_id=dag_id or "upload", outcome="REFUSED", details=details)


def _audit_started(user: str, dag_id: str, dag_run_id: str, received: Received) -> None:
    with db.transaction() as cur:
        audit.record(cur, actor=user, action="upload.hand_in", object_type="dag", object_id=dag_id,
                     outcome="STARTED", details={"dag_run_id": dag_run_id, "file": received.inbox_name,
                                                 "client_file_name": received.client_name,
                                                 "sha256": received.sha256, "size_bytes": received.size_bytes})


# -- HTML ----------------------------------------------------------------------------------------------
def _title(workflow: Workflow) -> str:
    heading = next((line.lstrip("# ").strip() for line in workflow.doc_md.splitlines() if line.startswith("#")), "")
    return heading or workflow.dag_id


def _form(workflow: Workflow, choices: dict[str, list[tuple[str, str]]], *, opened: bool) -> str:
    dag_id = html.escape(workflow.dag_id)
    limit = config.web_upload_max_bytes()
    fields = ["<label>CSV file<input type='file' name='file' accept='.csv,text/csv' required></label>"]
    for name, param in params_of(workflow).items():
        if name == "file":
            continue
        fields.append(_field(name, param.schema, param.value, param.description or "", choices.get(name)))
    return (f"<details id='{dag_id}'{' open' if opened else ''}><summary>{html.escape(_title(workflow))} "
            f"<code>{dag_id}</code></summary>"
            f"<form method='post' enctype='multipart/form-data' action='upload/{dag_id}'"
            f" data-max-bytes='{limit}' data-too-large='{html.escape(too_large(limit))}'"
            f" onsubmit='return withinLimit(this)'>{''.join(fields)}"
            f"<p class='refused' hidden></p><button type='submit'>Upload</button></form></details>")


def _field(name: str, schema: dict[str, Any], default: Any, help_text: str,
           choices: list[tuple[str, str]] | None) -> str:
    label = html.escape(name)
    described = f"<small>{html.escape(help_text)}</small>"
    if choices is not None:
        options = "".join(f"<option value='{html.escape(value)}'>{html.escape(text)}</option>"
                          for value, text in choices)
        empty = "" if choices else "<option value='' disabled>(none yet)</option>"
        return f"<label>{label}<select name='{label}' required>{empty}{options}</select>{described}</label>"
    if "enum" in schema:
        options = "".join(f"<option{' selected' if value == default else ''}>{html.escape(str(value))}</option>"
                          for value in schema["enum"])
        return f"<label>{label}<select name='{label}'>{options}</select>{described}</label>"
    return (f"<label>{label}<input type='text' name='{label}' value='{html.escape(str(default or ''))}'"
            f" maxlength='{int(schema.get('maxLength', 200))}'>{described}</label>")


# Airflow frames the page in a sandbox that may not navigate the window: a link to a run moves Airflow's own
# router instead (same origin), as its navigation would; opened on its own, the page follows the link.
# A file over the limit is refused before a byte is sent (the server refuses it too, for scripts).
WITHIN_LIMIT = """
function withinLimit(form) {
  const file = form.querySelector("input[type=file]").files[0], note = form.querySelector("p.refused");
  if (file && file.size > Number(form.dataset.maxBytes)) {
    note.textContent = form.dataset.tooLarge;
    note.hidden = false;
    return false;
  }
  note.hidden = true;
  return true;
}
"""
OPEN_IN_AIRFLOW = """
function openInAirflow(link) {
  if (window.top === window) return true;
  try {
    const url = new URL(link.href), state = window.top.history.state || {};
    window.top.history.pushState({usr: null, key: Math.random().toString(36).slice(2, 10),
                                  idx: (state.idx || 0) + 1}, "", url.pathname + url.search);
    window.top.dispatchEvent(new PopStateEvent("popstate", {state: window.top.history.state}));
    return false;
  } catch (error) {
    return true;
  }
}
"""


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 56rem; color: #1a202c; }}
details {{ border: 1px solid #cbd5e0; border-radius: 6px; margin: .75rem 0; padding: .5rem 1rem; }}
summary {{ cursor: pointer; font-weight: 600; }}
label {{ display: block; margin: .75rem 0; font-weight: 500; }}
label input, label select {{ display: block; margin-top: .25rem; min-width: 20rem; }}
small {{ display: block; color: #4a5568; font-weight: 400; }}
button {{ margin: .5rem 0; padding: .4rem 1.2rem; }}
.refused {{ color: #9b2c2c; }} .started {{ color: #22543d; }}
</style></head>
<script>{WITHIN_LIMIT}{OPEN_IN_AIRFLOW}</script>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
