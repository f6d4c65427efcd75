"""The DAG of any workflow: its steps as tasks, with the same defaults for every DAG.

    intake -> validate -> propose -> approve (one task per checker) -> commit -> publish -> published
                       -> route -> <shortcut>      (a workflow with a shortcut, e.g. an export)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, Param, chain, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.trigger import CronTriggerTimetable

from benefitflow.core.errors import UserError
from benefitflow.workflows import publish
from benefitflow.workflows.approve import SYSTEM_MAKER, approval_steps
from benefitflow.workflows.commit import commit_step
from benefitflow.workflows.declaration import FileIntake, Workflow
from benefitflow.workflows.intake import intake_step
from benefitflow.workflows.propose import propose_step
from benefitflow.workflows.validate import ON_INVALID_ROWS, validate_step


@contextmanager
def user_errors_fail_the_run() -> Iterator[None]:
    """A user's error (benefitflow.core.errors) fails the run with its message and no retry: the one place it
    is told."""
    try:
        yield
    except UserError as exc:
        raise AirflowFailException(str(exc)) from exc


def maker_of(context: dict[str, Any]) -> str:
    return context["dag_run"].triggering_user_name or SYSTEM_MAKER


def params_of(workflow: Workflow) -> dict[str, Param]:
    """The trigger form: a file workflow's `file` and `on_invalid_rows`, then the workflow's own parameters."""
    if not isinstance(workflow.intake, FileIntake):
        return dict(workflow.intake.params)
    return {  # new Param objects for each DAG: a Param keeps the value it last resolved
        "file": Param("", type="string", minLength=1, maxLength=500,
                      description="CSV file name in the inbox (a path inside it is allowed)"),
        "on_invalid_rows": Param("reject_file", enum=list(ON_INVALID_ROWS),
                                 description="reject_file: any invalid row refuses the file; "
                                             "skip_invalid_rows: continue with the valid rows"),
        **workflow.intake.params,
    }


# A step cut short (its process killed, its worker lost, its database restarted) runs once more, on any worker: each
# is safe to run again at any point (tests/e2e/test_faults.py). A user's error is not retried (user_errors_fail_the_run)
RUN_AGAIN_ONCE: dict[str, Any] = {"retries": 1, "retry_delay": timedelta(seconds=5)}


def build_dag(workflow: Workflow) -> DAG:
    """Triggered by a maker (or on the workflow's schedule); many runs at once (a run waiting for a checker
    holds no slot)."""
    with DAG(dag_id=workflow.dag_id, schedule=_timetable(workflow.schedule), start_date=datetime(2026, 1, 1),
             catchup=False, max_active_runs=64, doc_md=workflow.doc_md, tags=["benefitflow", *workflow.tags],
             default_args={"owner": "benefitflow", "retries": 0}, params=params_of(workflow),
             render_template_as_native_obj=True) as dag:

        @task(task_id="intake", **RUN_AGAIN_ONCE)
        def intake_task(**context: Any) -> dict[str, Any]:
            with user_errors_fail_the_run():
                return intake_step(workflow=workflow, options=context["params"], user=maker_of(context),
                                   dag_id=context["dag"].dag_id, run_id=context["run_id"])

        @task(task_id="validate", **RUN_AGAIN_ONCE)
        def validate_task(taken: dict[str, Any], **context: Any) -> dict[str, Any]:
            with user_errors_fail_the_run():
                return validate_step(workflow=workflow, taken=taken, options=context["params"],
                                     user=maker_of(context))

        @task(task_id="propose", **RUN_AGAIN_ONCE)
        def propose_task(taken: dict[str, Any], validated: dict[str, Any], **context: Any) -> dict[str, Any]:
            with user_errors_fail_the_run():
                return propose_step(workflow=workflow, taken=taken, validated=validated, options=context["params"])

        # A commit cut short runs once more, on any worker: it commits, or finds its transaction went through and
        # finishes what follows it (commit.earlier_commit).
        @task(task_id="commit", **RUN_AGAIN_ONCE)
        def commit_task(taken: dict[str, Any], **context: Any) -> dict[str, Any]:
            with user_errors_fail_the_run():
                return commit_step(workflow=workflow, dag_id=context["dag"].dag_id, run_id=context["run_id"],
                                   taken=taken, user=maker_of(context))

        @task(task_id="publish", **RUN_AGAIN_ONCE)
        def publish_task(writes: list[str]) -> dict[str, Any]:
            """One in-process `dbt run` of the models downstream of `writes`; each model's status is the XCom."""
            return publish.publish(writes)

        @task(task_id="published", outlets=[Asset(workflow.publish.asset)])
        def published_task() -> None:
            """Marks the derived state as refreshed: downstream DAGs scheduled on the asset run."""

        taken = intake_task()
        validated = validate_task(taken)
        proposal = propose_task(taken, validated)
        if workflow.shortcut is not None:
            _route(workflow, taken, validated, proposal)
        chain(proposal, *approval_steps(workflow.operation, proposal_table=workflow.proposal_table,
                                             shown_columns=workflow.propose.shown, default=workflow.approve),
              commit_task(taken), publish_task(writes=list(workflow.commit.writes)), published_task())
    return dag


def _timetable(cron: str | None) -> CronTriggerTimetable | None:
    """A run at each cron point from the next one on (none for the points before the DAG appeared)."""
    return CronTriggerTimetable(cron, timezone="UTC", run_immediately=False) if cron else None


def _route(workflow: Workflow, taken: Any, validated: Any, proposal: Any) -> None:
    shortcut = workflow.shortcut
    assert shortcut is not None

    @task.branch(task_id="route")
    def route(validated: dict[str, Any]) -> str:
        """Straight to the shortcut when no checker is needed; otherwise propose and ask."""
        return shortcut.task_id if shortcut.applies(validated) else "propose"

    @task(task_id=shortcut.task_id)
    def shortcut_task(taken: dict[str, Any], **context: Any) -> dict[str, Any]:
        with user_errors_fail_the_run():
            return shortcut.run(taken, context["params"], user=maker_of(context), label=context["run_id"])

    route(validated) >> [shortcut_task(taken), proposal]
