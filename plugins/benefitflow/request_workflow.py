"""The same six steps for operations asked for from a trigger form rather than with a file.

    intake -> validate -> propose -> approve -> commit -> publish
    (record)  (compile)   (dbt)      (HITL)     (ledger)  (dbt run + asset event)

intake records the parameters as given (`intake.requests`); validate checks them (a plan
document, criteria compiled against whitelisted fields) and may write the set they select
into `intake.request_selection`; propose runs the dbt proposal model with the request id;
the rest is the upload workflows' approval, commit and publish.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
from airflow.sdk import DAG, Param, task

from benefitflow import audit, db, dbt_runner, decisions, intake, proposal_digest, publishing
from benefitflow.intake import RequestError
from benefitflow.workflow import (
    CommitConflict,
    WorkflowError,
    append_commit,
    approve_commit_publish,
    earlier_commit,
    maker_of,
    proposal_ref,
    record_direct_decision,
    refuse_commit,
    workflow_dag,
)

Cursor = psycopg2.extensions.cursor
Options = Mapping[str, Any]
Validate = Callable[[Cursor, int, Options, str], dict[str, Any]]
Summarise = Callable[[Cursor, int], dict[str, Any]]
Commit = Callable[[Cursor, int, int], int]


@dataclass(frozen=True)
class RequestWorkflow:
    """A kind of request.

    validate(cur, request_id, options, user) checks the parameters, raising RequestError, and
    returns what the checker should see of them, kept as the request's document: the proposal
    model (run with the request id as its only var) reads what it needs from there.
    """

    dag_id: str
    operation: str
    params: dict[str, Param]
    validate: Validate
    proposal_model: str
    summarise: Summarise
    commit: Commit
    publish_asset: str
    doc_md: str
    plan_of: Callable[[Options], str] = lambda options: str(options.get("plan") or "")
    tags: tuple[str, ...] = ()
    describe: Callable[[Options], str] = lambda options: ""
    # The ledger tables the commit appends to: the publish rebuilds what derives from them (publishing.py).
    writes: tuple[str, ...] = ()
    # Outside the database (request_id) -> None: once the commit is durable (e.g. a file put in place),
    # and when the commit fails (e.g. that file removed).
    after_commit: Callable[[int], None] | None = None
    after_failed_commit: Callable[[int], None] | None = None


# -- steps (plain functions) ---------------------------------------------------------------
def intake_step(*, workflow: RequestWorkflow, options: Options, user: str, dag_id: str, run_id: str) -> dict[str, Any]:
    with db.transaction() as cur:
        request_id = intake.register_request(
            cur, kind=workflow.operation, plan_code=workflow.plan_of(options)[:100], parameters=dict(options),
            user=user, dag_id=dag_id, run_id=run_id,
        )
    return {"request_id": request_id, "request": workflow.describe(options) or f"{workflow.operation} {request_id}"}


def validate_step(*, workflow: RequestWorkflow, request: dict[str, Any], options: Options, user: str) -> dict[str, Any]:
    request_id = int(request["request_id"])
    try:
        with db.transaction() as cur:
            validated = workflow.validate(cur, request_id, options, user)
            intake.set_request_status(cur, request_id, "RECEIVED", document=validated)
    except RequestError as exc:
        _stop(request_id, user, str(exc), status="INVALID")
        raise WorkflowError(f"{request['request']}: {exc}") from exc
    return validated


def propose_step(*, workflow: RequestWorkflow, request: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
    request_id = int(request["request_id"])
    proposal = proposal_ref(workflow.operation, workflow.proposal_model, request_id=request_id)
    with proposal_digest.locked(proposal):
        dbt_runner.run(["run", "--select", workflow.proposal_model], {"request_id": request_id})
        with db.transaction() as cur:
            summary = workflow.summarise(cur, request_id)
            cur.execute("DELETE FROM intake.request_selection WHERE request_id = %s", (request_id,))
            intake.set_request_status(cur, request_id, "WAITING_FOR_APPROVAL")
            digest = proposal_digest.compute(cur, proposal)
    return {**request, **validated, **summary, "proposal_digest": digest}


def commit_step(*, workflow: RequestWorkflow, dag_id: str, run_id: str, request_id: int, user: str) -> dict[str, Any]:
    """Append the approved proposal to the ledger in one transaction, with the decision it rests on.

    Run again after its transaction went through, it returns that commit (and finishes what
    `after_commit` does outside the database, e.g. the payroll file) instead of appending twice.
    """
    proposal = proposal_ref(workflow.operation, workflow.proposal_model, request_id=request_id)
    if (earlier := earlier_commit(workflow.operation, dag_id, run_id, proposal)) is not None:
        if workflow.after_commit is not None:
            workflow.after_commit(request_id)
        return earlier
    try:
        with db.transaction() as cur:
            decision_id, commit_id = append_commit(cur, proposal, dag_id, run_id)
            appended = workflow.commit(cur, commit_id, request_id)
            publishing.check_writes(cur, workflow.operation, workflow.writes)
            publishing.refresh_statistics(cur)
            intake.set_request_status(cur, request_id, "APPLIED")
            _apply_request_upload(cur, request_id)
            audit.record(cur, actor=user, action=f"{workflow.operation}.commit", object_type="request",
                         object_id=request_id, outcome="COMMITTED",
                         details={"commit_id": commit_id, "decision_id": decision_id, "rows": appended})
    except Exception as exc:
        if workflow.after_failed_commit is not None:
            workflow.after_failed_commit(request_id)
        if isinstance(exc, decisions.NotApprovedError):
            refuse_commit(proposal, dag_id, run_id, user, str(exc))
            raise WorkflowError(str(exc)) from exc
        if isinstance(exc, CommitConflict):
            _stop(request_id, user, f"approved but not applied: {exc}", status="FAILED")
        raise
    if workflow.after_commit is not None:
        workflow.after_commit(request_id)
    return {"commit_id": commit_id, "decision_id": decision_id, "rows": appended}


def _apply_request_upload(cur: Cursor, request_id: int) -> None:
    """A file given as a parameter (e.g. a list of ids) is applied with its request."""
    cur.execute("SELECT (document->>'upload_id')::bigint FROM intake.requests WHERE request_id = %s", (request_id,))
    upload_id = cur.fetchone()[0]
    if upload_id is not None:
        intake.set_status(cur, upload_id, "APPLIED")


def _stop(request_id: int, user: str, message: str, *, status: str) -> None:
    with db.transaction() as cur:
        intake.set_request_status(cur, request_id, status, message=message)
        audit.record(cur, actor=user, action=f"request.{status.lower()}", object_type="request",
                     object_id=request_id, outcome=status, details={"message": message})


# -- the DAG ---------------------------------------------------------------------------------
def step_tasks(workflow: RequestWorkflow) -> tuple[Any, Any, Any, Any]:
    """intake, validate, propose and commit as Airflow tasks (made inside a DAG's context)."""

    @task(task_id="intake")
    def intake_task(**context: Any) -> dict[str, Any]:
        return intake_step(workflow=workflow, options=context["params"], user=maker_of(context),
                           dag_id=context["dag"].dag_id, run_id=context["run_id"])

    @task(task_id="validate")
    def validate_task(request: dict[str, Any], **context: Any) -> dict[str, Any]:
        return validate_step(workflow=workflow, request=request, options=context["params"], user=maker_of(context))

    @task(task_id="propose")
    def propose_task(request: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
        return propose_step(workflow=workflow, request=request, validated=validated)

    @task(task_id="commit")
    def commit_task(request: dict[str, Any], **context: Any) -> dict[str, Any]:
        return commit_step(workflow=workflow, dag_id=context["dag"].dag_id, run_id=context["run_id"],
                           request_id=int(request["request_id"]), user=maker_of(context))

    return intake_task, validate_task, propose_task, commit_task


def build_request_dag(workflow: RequestWorkflow) -> DAG:
    with workflow_dag(workflow.dag_id, workflow.doc_md, workflow.tags, workflow.params) as dag:
        intake_task, validate_task, propose_task, commit_task = step_tasks(workflow)
        request = intake_task()
        proposal = propose_task(request, validate_task(request))
        approve_commit_publish(workflow.operation, workflow.proposal_model, workflow.publish_asset, proposal,
                               commit_task(request), workflow.writes)
    return dag


# -- the same steps without the scheduler (integration tests, `make bench`) -------------------
def run_steps(
    workflow: RequestWorkflow, *, options: Options, maker: str, checker: str | None, run_id: str,
    on_step: Callable[[str, Callable[[], Any]], Any] = lambda _name, action: action(),
) -> dict[str, Any]:
    """intake → validate → propose → decision → commit → publish, as the DAG runs them."""
    dag_id = f"{workflow.dag_id}:direct"
    request = on_step("intake", lambda: intake_step(workflow=workflow, options=options, user=maker, dag_id=dag_id,
                                                    run_id=run_id))
    validated = on_step("validate", lambda: validate_step(workflow=workflow, request=request, options=options,
                                                          user=maker))
    return run_steps_after_validate(workflow, request, validated, maker=maker, checker=checker, run_id=run_id,
                                    on_step=on_step)


def run_steps_after_validate(
    workflow: RequestWorkflow, request: dict[str, Any], validated: dict[str, Any], *, maker: str,
    checker: str | None, run_id: str, on_step: Callable[[str, Callable[[], Any]], Any] = lambda _name, action: action(),
) -> dict[str, Any]:
    """propose → decision → commit → publish of a request already taken in and checked."""
    dag_id = f"{workflow.dag_id}:direct"
    proposal = on_step("propose", lambda: propose_step(workflow=workflow, request=request, validated=validated))
    request_id = int(request["request_id"])
    # A file given as a parameter (a list of ids) is part of the request: the decision names the request.
    if not record_direct_decision(workflow.operation, dag_id, run_id, maker, checker, proposal,
                                  request_id=request_id):
        return {"proposal": proposal, "request_id": request_id}
    committed = on_step("commit", lambda: commit_step(workflow=workflow, dag_id=dag_id, run_id=run_id,
                                                      request_id=request_id, user=maker))
    on_step("publish", lambda: publishing.publish(workflow.writes))
    return {"proposal": proposal, "request_id": request_id, "commit": committed}
