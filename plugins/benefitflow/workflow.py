"""The one shape every upload workflow follows, built by one factory.

    intake -> validate -> propose -> approve -> commit -> publish
    (COPY)    (GX)        (dbt)      (HITL)     (ledger)  (dbt run + asset event)

A workflow is described by an `UploadWorkflow`: the file spec, the GX suite, the dbt
proposal model, how to summarise the proposal, and how to commit it. The step
functions below take plain arguments so they are tested without Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg2.extensions
from airflow.sdk import DAG, Asset, Param, chain, task
from airflow.sdk.exceptions import AirflowFailException
from psycopg2 import sql

from benefitflow import (
    audit,
    config,
    db,
    dbt_runner,
    decisions,
    file_store,
    intake,
    proposal_digest,
    publishing,
    validation,
)
from benefitflow.approval import approval_steps, policy_for
from benefitflow.file_store import InboxError
from benefitflow.intake import FileSpec, IntakeError
from benefitflow.proposal_digest import ProposalRef

if TYPE_CHECKING:  # GX is imported by the tasks that validate, not when the DAG is parsed
    from great_expectations.core import ExpectationSuite

ON_INVALID_ROWS = ("reject_file", "skip_invalid_rows")
MAX_ERRORS_IN_MESSAGE = 5

Cursor = psycopg2.extensions.cursor
Options = Mapping[str, Any]  # the run's parameters (file, on_invalid_rows, mode, ...)
Summarise = Callable[[Cursor, int], dict[str, Any]]
Commit = Callable[[Cursor, int, int], int]
Prepare = Callable[[Cursor, dict[str, Any], Options], str]
SuiteFor = Callable[[dict[str, Any], Options], "ExpectationSuite"]
Check = Callable[[Cursor, dict[str, Any], Options], None]
ProposalVars = Callable[[dict[str, Any], Options], dict[str, Any]]


class WorkflowError(AirflowFailException):
    """Stops the run with a message for the user (no retry: the input is wrong, not the system)."""


class CommitConflict(WorkflowError):
    """The registry changed between proposal and commit in a way the proposal cannot survive."""


@dataclass(frozen=True)
class UploadWorkflow:
    """A kind of upload. Fixed parts are values; parts that depend on the run are callables of its options.

    spec: the file's columns (or a function of the options, e.g. of `mode`).
    suite: a suite name in expectations/ (or a function building the suite for the upload).
    prepare: optional; derives the table to validate from the staged one (typed values, checks).
    check: optional; SQL checks GX cannot express (against the registry), writing intake.row_errors.
    proposal_vars: optional; extra values for the proposal model (dbt_runner.run_values).
    writes: the ledger tables the commit appends to; the publish rebuilds what derives from them.
    """

    dag_id: str
    operation: str
    spec: FileSpec | Callable[[Options], FileSpec]
    suite: str | SuiteFor
    proposal_model: str
    summarise: Summarise
    commit: Commit
    publish_asset: str
    doc_md: str
    tags: tuple[str, ...] = ()
    extra_params: dict[str, Param] = field(default_factory=dict)
    prepare: Prepare | None = None
    check: Check | None = None
    proposal_vars: ProposalVars | None = None
    plan_of: Callable[[Options], str] = lambda options: ""  # the plan an upload is for, if any
    writes: tuple[str, ...] = ()

    def spec_for(self, options: Options) -> FileSpec:
        return self.spec if isinstance(self.spec, FileSpec) else self.spec(options)

    def suite_for(self, upload: dict[str, Any], options: Options) -> ExpectationSuite:
        return validation.load_suite(self.suite) if isinstance(self.suite, str) else self.suite(upload, options)


# -- steps (plain functions) ---------------------------------------------------------------
def intake_step(
    *, spec: FileSpec, file: str, user: str, dag_id: str, run_id: str, plan_code: str = "", mode: str | None = None,
    operation: str | None = None,
) -> dict[str, Any]:
    """Open the file once in the inbox, archive and register it, stage its rows; `operation` defaults to `dag_id`."""
    try:
        with file_store.open_in_inbox(file, config.inbox()) as handed_in, db.transaction() as cur:
            upload = intake.register(
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
        header = intake.read_header(upload.stored_path, spec, upload.file_name)
        with db.transaction() as cur:
            table, row_count = intake.stage(cur, upload, header)
            intake.set_status(cur, upload.upload_id, "RECEIVED", staged_table=table, row_count=row_count)
    except IntakeError as exc:
        _stop_upload(upload.upload_id, user, str(exc))
        raise WorkflowError(str(exc)) from exc
    return {"upload_id": upload.upload_id, "file_name": upload.file_name, "staged_table": table,
            "row_count": row_count, "header": header}


def _stop_upload(upload_id: int, user: str, message: str, *, status: str = "INVALID") -> None:
    """Record why the upload stops: the user's file (INVALID) or the platform (FAILED)."""
    with db.transaction() as cur:
        if status == "INVALID":
            cur.execute(
                "INSERT INTO intake.row_errors (upload_id, rule, message) VALUES (%s, 'file', %s)", (upload_id, message)
            )
        intake.set_status(cur, upload_id, status, message=message)
        audit.record(cur, actor=user, action=f"upload.{status.lower()}", object_type="upload", object_id=upload_id,
                     outcome=status, details={"message": message})


def validate_step(*, workflow: UploadWorkflow, upload: dict[str, Any], options: Options, user: str) -> dict[str, Any]:
    on_invalid_rows = options.get("on_invalid_rows", "reject_file")
    if on_invalid_rows not in ON_INVALID_ROWS:
        raise WorkflowError(f"on_invalid_rows must be one of {ON_INVALID_ROWS}, not {on_invalid_rows!r}")
    upload_id, file_name = upload["upload_id"], upload["file_name"]
    try:
        table = upload["staged_table"]
        if workflow.prepare is not None:
            with db.transaction() as cur:
                table = workflow.prepare(cur, upload, options)
        results = validation.run_suite(config.database_url(), "intake", table, workflow.suite_for(upload, options))
    except Exception as exc:
        _stop_upload(upload_id, user, f"validation could not run: {exc}", status="FAILED")
        raise
    report_path = config.error_report(upload_id)
    with db.transaction() as cur:
        blocking_file_errors = validation.record_errors(cur, upload_id, results, "intake", table)
        if workflow.check is not None:
            workflow.check(cur, upload, options)
        summary = validation.summarise(cur, upload_id, upload["row_count"], blocking_file_errors)
        validation.write_error_report(cur, upload_id, file_name, report_path)
        refusal = _refusal(summary, on_invalid_rows)
        status = "INVALID" if refusal else "WAITING_FOR_APPROVAL"
        intake.set_status(
            cur, upload_id, status, message=refusal, valid_row_count=summary.valid_row_count,
            invalid_row_count=summary.invalid_row_count, error_report_path=str(report_path),
        )
        first_errors = _first_errors(cur, upload_id)
        if refusal:
            intake.drop_staged(cur, upload["staged_table"])
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
    }


def _refusal(summary: validation.ValidationSummary, on_invalid_rows: str) -> str | None:
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


def propose_step(
    *, workflow: UploadWorkflow, upload: dict[str, Any], validated: dict[str, Any], options: Options | None = None
) -> dict[str, Any]:
    upload_id = int(upload["upload_id"])
    values = {"upload_id": upload_id}
    if workflow.proposal_vars is not None:
        values |= workflow.proposal_vars(upload, options or {})
    proposal = proposal_ref(workflow.operation, workflow.proposal_model, upload_id=upload_id)
    with proposal_digest.locked(proposal):
        dbt_runner.run(["run", "--select", workflow.proposal_model], values)
        with db.transaction() as cur:
            summary = workflow.summarise(cur, upload_id)
            digest = proposal_digest.compute(cur, proposal)
            intake.drop_staged(cur, upload["staged_table"])  # the proposal holds all the commit needs
    return {"file": upload["file_name"], "upload_id": upload["upload_id"], **validated, **summary,
            "proposal_digest": digest}


def proposal_ref(operation: str, proposal_model: str, *, upload_id: int | None = None,
                 request_id: int | None = None) -> ProposalRef:
    """The rows a run proposes: its proposal model's table, keyed by the run's upload or request."""
    return ProposalRef(operation, f"proposals.{proposal_model}", upload_id=upload_id, request_id=request_id)


def commit_step(*, workflow: UploadWorkflow, dag_id: str, run_id: str, upload_id: int, user: str) -> dict[str, Any]:
    """Append the approved proposal to the ledger in one transaction, with the decision it rests on.

    Run again after its transaction went through, it returns that commit instead of appending twice.
    """
    proposal = proposal_ref(workflow.operation, workflow.proposal_model, upload_id=upload_id)
    if (earlier := earlier_commit(workflow.operation, dag_id, run_id, proposal)) is not None:
        return earlier
    try:
        with db.transaction() as cur:
            decision_id, commit_id = append_commit(cur, proposal, dag_id, run_id)
            appended = workflow.commit(cur, commit_id, upload_id)
            publishing.check_writes(cur, workflow.operation, workflow.writes)
            publishing.refresh_statistics(cur)
            cur.execute("SELECT invalid_row_count FROM intake.uploads WHERE upload_id = %s", (upload_id,))
            invalid = cur.fetchone()[0] or 0
            intake.set_status(cur, upload_id, "PARTIALLY_APPLIED" if invalid else "APPLIED")
            audit.record(cur, actor=user, action=f"{workflow.operation}.commit", object_type="upload",
                         object_id=upload_id, outcome="COMMITTED",
                         details={"commit_id": commit_id, "decision_id": decision_id, "rows": appended})
    except decisions.NotApprovedError as exc:
        refuse_commit(proposal, dag_id, run_id, user, str(exc))
        raise WorkflowError(str(exc)) from exc
    except CommitConflict as exc:
        _stop_upload(upload_id, user, f"approved but not applied: {exc}", status="FAILED")
        raise
    return {"commit_id": commit_id, "decision_id": decision_id, "rows": appended}


def append_commit(cur: Cursor, proposal: ProposalRef, dag_id: str, run_id: str) -> tuple[int, int]:
    """The commit record for the approval of exactly this proposal; return decision and commit ids.

    The digest is recomputed here, inside the commit's transaction and under the proposal's lock,
    from the rows about to be appended: an approval of anything else is refused.
    """
    proposal_digest.lock_in_transaction(cur, proposal)
    _refuse_superseded(cur, proposal, dag_id, run_id)
    digest = proposal_digest.compute(cur, proposal)
    decision_id = decisions.require_approval(cur, dag_id, run_id, upload_id=proposal.upload_id,
                                             request_id=proposal.request_id, digest=digest)
    cur.execute(
        "INSERT INTO ledger.commits (operation, dag_id, run_id, decision_id, upload_id, request_id, proposal_digest)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING commit_id",
        (proposal.operation, dag_id, run_id, decision_id, proposal.upload_id, proposal.request_id, digest),
    )
    return decision_id, int(cur.fetchone()[0])


def _refuse_superseded(cur: Cursor, proposal: ProposalRef, dag_id: str, run_id: str) -> None:
    is_request = proposal.request_id is not None
    table, key = ("requests", proposal.request_id) if is_request else ("uploads", proposal.upload_id)
    cur.execute(sql.SQL("SELECT status FROM intake.{} WHERE {} = %s FOR UPDATE").format(
        sql.Identifier(table), sql.Identifier(intake.INPUT_KEYS[table])), (key,))
    if (found := cur.fetchone()) is None or found[0] == "SUPERSEDED":
        raise decisions.NotApprovedError(
            f"run {dag_id}/{run_id}: {_input_name(proposal.upload_id, proposal.request_id)} was superseded "
            "(its run took in its input again): nothing is committed")


def earlier_commit(operation: str, dag_id: str, run_id: str, proposal: ProposalRef) -> dict[str, Any] | None:
    """This run's commit if it already went through (a retried or cleared commit step), else None.

    A run commits once: if it committed another upload or request (its input was taken in
    again after the commit), nothing more is committed.
    """
    with db.transaction() as cur:
        cur.execute(
            "SELECT c.commit_id, c.decision_id, c.upload_id, c.request_id,"
            " (SELECT (e.details ->> 'rows')::bigint FROM ledger.audit_events e WHERE e.action = %s"
            "  AND e.details ->> 'commit_id' = c.commit_id::text ORDER BY e.event_id LIMIT 1)"
            " FROM ledger.commits c WHERE c.dag_id = %s AND c.run_id = %s",
            (f"{operation}.commit", dag_id, run_id),
        )
        found = cur.fetchone()
    if found is None:
        return None
    commit_id, decision_id, upload_id, request_id, rows = found
    if (upload_id, request_id) != (proposal.upload_id, proposal.request_id):
        raise WorkflowError(
            f"run {dag_id}/{run_id} already committed {_input_name(upload_id, request_id)} (commit {commit_id}); "
            f"it does not commit {_input_name(proposal.upload_id, proposal.request_id)} too: start a new run")
    return {"commit_id": commit_id, "decision_id": decision_id, "rows": rows, "already_committed": True}


def _input_name(upload_id: int | None, request_id: int | None) -> str:
    return f"request {request_id}" if request_id is not None else f"upload {upload_id}"


def refuse_commit(proposal: ProposalRef, dag_id: str, run_id: str, user: str, reason: str) -> None:
    """The refusal is an audit event of its own: the commit's transaction that found it was rolled back."""
    with db.transaction() as cur:
        audit.record(cur, actor=user, action=f"{proposal.operation}.commit_refused", object_type="run",
                     object_id=f"{dag_id}/{run_id}", outcome="REFUSED",
                     details={"reason": reason, "upload_id": proposal.upload_id, "request_id": proposal.request_id})


# -- the DAG ---------------------------------------------------------------------------------
def maker_of(context: dict[str, Any]) -> str:
    return context["dag_run"].triggering_user_name or "system"


def workflow_dag(dag_id: str, doc_md: str, tags: tuple[str, ...], params: dict[str, Param]) -> DAG:
    """A workflow DAG: triggered by a maker; many runs at once (a run waiting for a checker holds no slot)."""
    return DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=64,
               doc_md=doc_md, tags=["benefitflow", *tags], default_args={"owner": "benefitflow", "retries": 0},
               params=params, render_template_as_native_obj=True)


def build_upload_dag(workflow: UploadWorkflow) -> DAG:
    with workflow_dag(workflow.dag_id, workflow.doc_md, workflow.tags, {
        "file": Param("", type="string", minLength=1, maxLength=500,
                      description="CSV file name in the inbox (a path inside it is allowed)"),
        "on_invalid_rows": Param("reject_file", enum=list(ON_INVALID_ROWS),
                                 description="reject_file: any invalid row refuses the file; "
                                             "skip_invalid_rows: continue with the valid rows"),
        **workflow.extra_params,
    }) as dag:

        @task(task_id="intake")
        def intake_task(**context: Any) -> dict[str, Any]:
            params = context["params"]
            return intake_step(
                spec=workflow.spec_for(params), file=params["file"], user=maker_of(context),
                dag_id=context["dag"].dag_id, run_id=context["run_id"], mode=params.get("mode"),
                plan_code=workflow.plan_of(params), operation=workflow.operation,
            )

        @task(task_id="validate")
        def validate_task(upload: dict[str, Any], **context: Any) -> dict[str, Any]:
            return validate_step(workflow=workflow, upload=upload, options=context["params"], user=maker_of(context))

        @task(task_id="propose")
        def propose_task(upload: dict[str, Any], validated: dict[str, Any], **context: Any) -> dict[str, Any]:
            return propose_step(workflow=workflow, upload=upload, validated=validated, options=context["params"])

        @task(task_id="commit")
        def commit_task(upload: dict[str, Any], **context: Any) -> dict[str, Any]:
            return commit_step(workflow=workflow, dag_id=context["dag"].dag_id, run_id=context["run_id"],
                               upload_id=int(upload["upload_id"]), user=maker_of(context))

        upload = intake_task()
        proposal = propose_task(upload, validate_task(upload))
        approve_commit_publish(workflow.operation, workflow.proposal_model, workflow.publish_asset, proposal,
                               commit_task(upload), workflow.writes)
    return dag


def approve_commit_publish(
    operation: str, proposal_model: str, publish_asset: str, proposal: Any, committed: Any, writes: tuple[str, ...],
) -> None:
    """The second half of every workflow: the checker's decision, the commit, dbt's rebuild, the asset event."""

    @task(task_id="publish", retries=1)
    def publish(writes: list[str]) -> dict[str, Any]:
        """One in-process `dbt run` of the models downstream of `writes`; each model's status is the XCom."""
        return publishing.publish(writes)

    @task(task_id="published", outlets=[Asset(publish_asset)])
    def published() -> None:
        """Marks the derived state as refreshed: downstream DAGs scheduled on the asset run."""

    chain(proposal, *approval_steps(operation, proposal_table=f"proposals.{proposal_model}"), committed,
          publish(writes=list(writes)), published())


# -- the same steps without the scheduler (integration tests, `make bench`) -------------------
def run_steps(
    workflow: UploadWorkflow, *, file: str, options: Options, maker: str, checker: str | None, run_id: str,
    on_step: Callable[[str, Callable[[], Any]], Any] = lambda _name, action: action(),
) -> dict[str, Any]:
    """intake → validate → propose → decision → commit → publish, as the DAG runs them.

    The approval is recorded as `checker`'s decision (None: rejected by the checker group's
    default). `on_step` wraps each step (the bench times them). Returns the proposal
    summary and, when approved, the commit.
    """
    dag_id = f"{workflow.dag_id}:direct"
    upload = on_step("intake", lambda: intake_step(
        spec=workflow.spec_for(options), file=file, user=maker, dag_id=dag_id, run_id=run_id,
        mode=options.get("mode"), plan_code=workflow.plan_of(options), operation=workflow.operation))
    validated = on_step("validate", lambda: validate_step(workflow=workflow, upload=upload, options=options,
                                                          user=maker))
    proposal = on_step("propose", lambda: propose_step(workflow=workflow, upload=upload, validated=validated,
                                                       options=options))
    if not record_direct_decision(workflow.operation, dag_id, run_id, maker, checker, proposal,
                                  upload_id=int(upload["upload_id"])):
        return {"proposal": proposal, "upload_id": upload["upload_id"]}
    committed = on_step("commit", lambda: commit_step(workflow=workflow, dag_id=dag_id, run_id=run_id,
                                                      upload_id=int(upload["upload_id"]), user=maker))
    on_step("publish", lambda: publishing.publish(workflow.writes))
    return {"proposal": proposal, "upload_id": upload["upload_id"], "commit": committed}


def record_direct_decision(
    operation: str, dag_id: str, run_id: str, maker: str, checker: str | None, summary: dict[str, Any], *,
    upload_id: int | None = None, request_id: int | None = None,
) -> bool:
    """`checker`'s approval (None: a rejection) of a run made without the scheduler; True when approved.

    The approval is for the proposal `summary` shows (its `proposal_digest`). In-process runs have
    no Airflow users: the names stand for the user ids. One checker: under a `distinct` policy the
    database refuses the approval (too few checkers).
    """
    policy = policy_for(operation)
    outcome = "APPROVED" if checker else "REJECTED"
    with db.transaction() as cur:
        decisions.record(cur, decisions.Decision(
            operation=operation, dag_id=dag_id, run_id=run_id, maker=maker, checker=checker,
            checker_group=policy.group, policy=policy.policy, outcome=outcome, upload_id=upload_id,
            request_id=request_id, summary=summary, required_approvals=policy.checkers,
            proposal_digest=summary.get("proposal_digest"), maker_id=maker, checker_id=checker))
    return outcome == "APPROVED"
