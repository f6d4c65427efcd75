"""The same steps without the scheduler, in one process (integration tests, `make bench`).

The checker's decision is recorded as the approve step records it; everything else is the
steps the DAG runs, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benefitflow.core import db
from benefitflow.workflows import decisions, publish
from benefitflow.workflows.approve import policy_for
from benefitflow.workflows.commit import commit_step
from benefitflow.workflows.declaration import Approval, Options, Workflow
from benefitflow.workflows.intake import intake_step
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.validate import validate_step

OnStep = Callable[[str, Callable[[], Any]], Any]


def each_step(_name: str, action: Callable[[], Any]) -> Any:
    return action()


def run_steps(
    workflow: Workflow, *, options: Options, maker: str, checker: str | None, run_id: str, file: str | None = None,
    on_step: OnStep = each_step,
) -> dict[str, Any]:
    """intake → validate → propose → decision → commit → publish, as the DAG runs them.

    `file` is the `file` option of a file workflow. The approval is recorded as `checker`'s decision
    (None: rejected by the checker group's default). `on_step` wraps each step (the bench times
    them). Returns the upload or request id, the proposal summary and, when approved, the commit;
    a workflow's shortcut taken instead returns under its task id.
    """
    options = {**options, "file": file} if file is not None else options
    dag_id = direct_dag_id(workflow)
    taken = on_step("intake", lambda: intake_step(workflow=workflow, options=options, user=maker, dag_id=dag_id,
                                                  run_id=run_id))
    validated = on_step("validate", lambda: validate_step(workflow=workflow, taken=taken, options=options,
                                                          user=maker))
    if workflow.shortcut is not None and workflow.shortcut.applies(validated):
        return {workflow.shortcut.task_id: workflow.shortcut.run(taken, options, user=maker, label=run_id)}
    proposal = on_step("propose", lambda: propose_step(workflow=workflow, taken=taken, validated=validated,
                                                       options=options))
    # A file given as a parameter (a list of ids) is part of the request: the decision names the request.
    ref = workflow.proposal_for(taken)
    key = {ref.key_column: ref.key}
    if not record_direct_decision(workflow.operation, dag_id, run_id, maker, checker, proposal,
                                  upload_id=ref.upload_id, request_id=ref.request_id, default=workflow.approve):
        return {"proposal": proposal, **key}
    committed = on_step("commit", lambda: commit_step(workflow=workflow, dag_id=dag_id, run_id=run_id, taken=taken,
                                                      user=maker))
    on_step("publish", lambda: publish.publish(workflow.commit.writes))
    return {"proposal": proposal, **key, "commit": committed}


def direct_dag_id(workflow: Workflow) -> str:
    """What in-process runs record as their DAG: never an id the scheduler runs."""
    return f"{workflow.dag_id}:direct"


def record_direct_decision(
    operation: str, dag_id: str, run_id: str, maker: str, checker: str | None, summary: dict[str, Any], *,
    upload_id: int | None = None, request_id: int | None = None, default: Approval | None = None,
) -> bool:
    """`checker`'s approval (None: a rejection) of a run made without the scheduler; True when approved.

    The approval is for the proposal `summary` shows (its `proposal_digest`). In-process runs have
    no Airflow users: the names stand for the user ids. One checker: under a `distinct` policy the
    database refuses the approval (too few checkers).
    """
    policy = policy_for(operation, default)
    outcome = "APPROVED" if checker else "REJECTED"
    with db.transaction() as cur:
        decisions.record(cur, decisions.Decision(
            operation=operation, dag_id=dag_id, run_id=run_id, maker=maker, checker=checker,
            checker_group=policy.group, policy=policy.policy, outcome=outcome, upload_id=upload_id,
            request_id=request_id, summary=summary, required_approvals=policy.checkers,
            proposal_digest=summary.get("proposal_digest"), maker_id=maker, checker_id=checker))
    return outcome == "APPROVED"
