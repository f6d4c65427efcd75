"""A workflow, declared by its steps: what intake, validate, propose, approve, commit and publish do.

An operation takes in either a file (`FileIntake`: a CSV from the inbox, kept as an upload and
checked by `FileChecks`) or a form (`FormIntake`: the trigger form's parameters, kept as a request
and checked by `FormCheck`). From there every workflow is the same: dbt builds the proposal model
for the upload or request (`Proposal`), its checker group approves it (`Approval`, unless
`approval_groups.yaml` says otherwise), the commit appends it to the ledger (`Commit`), and the models
downstream of what the commit wrote are rebuilt (`Publish`). An export adds a `Shortcut`: a
request its validation shows needs no checker is carried out at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg2.extensions
from airflow.sdk import Param

from benefitflow.workflows import suites
from benefitflow.workflows.inputs import FileSpec
from benefitflow.workflows.proposal_digest import ProposalRef

if TYPE_CHECKING:  # GX is imported by the tasks that validate, not when the DAG is parsed
    from great_expectations.core import ExpectationSuite

Cursor = psycopg2.extensions.cursor
Options = Mapping[str, Any]  # the run's parameters (file, on_invalid_rows, mode, plan, ...)
Taken = dict[str, Any]  # what intake returns: the upload (upload_id, file_name, staged_table, ...) or the request


def no_plan(_options: Options) -> str:
    return ""


def plan_parameter(options: Options) -> str:
    return str(options.get("plan") or "")


# -- intake --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileIntake:
    """A CSV from the inbox: `spec` its columns (or a function of the options, e.g. of `mode`).

    params: the trigger form's parameters beyond `file` and `on_invalid_rows`.
    plan_of: the plan the upload is for, if any (kept with the upload).
    choices: for a parameter the Upload page offers as a list, the (value, label) pairs to offer,
    read from the database when the page is shown (e.g. the active plans).
    """

    spec: FileSpec | Callable[[Options], FileSpec]
    params: dict[str, Param] = field(default_factory=dict)
    plan_of: Callable[[Options], str] = no_plan
    choices: dict[str, Callable[[Cursor], list[tuple[str, str]]]] = field(default_factory=dict)

    def spec_for(self, options: Options) -> FileSpec:
        return self.spec if isinstance(self.spec, FileSpec) else self.spec(options)


@dataclass(frozen=True)
class FormIntake:
    """The trigger form's parameters, kept as given; `describe` names the request for the checker,
    `plan_of` the plan it is for, if any (kept with the request)."""

    params: dict[str, Param]
    describe: Callable[[Options], str] = lambda _options: ""
    plan_of: Callable[[Options], str] = no_plan


# -- validate ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileChecks:
    """How an upload is checked.

    suite: a suite name in expectations/ (or a function building the suite for the upload).
    prepare: optional; derives the table to validate from the staged one (typed values, checks).
    check: optional; SQL checks GX cannot express (against the registry), writing intake.row_errors.
    """

    suite: str | Callable[[Taken, Options], ExpectationSuite]
    prepare: Callable[[Cursor, Taken, Options], str] | None = None
    check: Callable[[Cursor, Taken, Options], None] | None = None

    def suite_for(self, upload: Taken, options: Options) -> ExpectationSuite:
        return suites.load_suite(self.suite) if isinstance(self.suite, str) else self.suite(upload, options)


@dataclass(frozen=True)
class FormCheck:
    """check(cur, request_id, options, user): the parameters checked (RequestError if wrong); returns what
    the checker should see of them, kept as the request's document, which the proposal model reads.
    It may write the set the request selects into intake.request_selection."""

    check: Callable[[Cursor, int, Options, str], dict[str, Any]]


# -- propose -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    """What the checker reads of the proposal dbt builds as `proposals.<dag_id>_proposal` (the workflow's
    proposal model, one name per DAG) for the run's upload or request.

    summarise(cur, proposal): the numbers the checker reads beside the digest; `proposal.table` holds the
    rows, `proposal.key` is the upload or request id they are keyed by.
    vars: optional; values for the model beyond the upload or request id (dbt_runner.run_values).
    shown: the proposal's columns the approval request shows of its first rows; none by default. Only columns
    that neither name, identify nor locate a person (the request is read by more people than the files are).
    """

    summarise: Callable[[Cursor, ProposalRef], dict[str, Any]]
    vars: Callable[[Taken, Options], dict[str, Any]] | None = None
    shown: tuple[str, ...] = ()


# -- approve -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Approval:
    """Who approves when `approval_groups.yaml` says nothing of the operation: `checkers` distinct members
    of `group` (an Airflow role), never the maker, within a week. The file's entry overrides it (another
    group, more checkers, another time limit)."""

    group: str
    checkers: int = 1


# -- commit --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Commit:
    """append(cur, commit_id, proposal): appends the approved proposal (`proposal.table`, keyed by
    `proposal.key`), returns the rows appended.

    writes: the ledger tables it appends to; the publish rebuilds what derives from them.
    after / after_failure: work outside the database (upload or request id) once the commit is
    durable (e.g. a file put in place; also when a retried commit finds it done), or when it failed.
    """

    append: Callable[[Cursor, int, ProposalRef], int]
    writes: tuple[str, ...]
    after: Callable[[int], None] | None = None
    after_failure: Callable[[int], None] | None = None


# -- publish -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Publish:
    """The asset event once the state is rebuilt: DAGs scheduled on it run next."""

    asset: str


@dataclass(frozen=True)
class Shortcut:
    """A request carried out without a checker when `applies(validated)`: task `task_id` runs
    `run(request, options, user=..., label=...)` instead of propose, approve and commit."""

    task_id: str
    applies: Callable[[dict[str, Any]], bool]
    run: Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Workflow:
    """An operation, step by step. `operation` (what the ledger, the audit trail and
    `approval_groups.yaml` call it) is the DAG id unless given."""

    dag_id: str
    doc_md: str
    intake: FileIntake | FormIntake
    validate: FileChecks | FormCheck
    propose: Proposal
    approve: Approval
    commit: Commit
    publish: Publish
    tags: tuple[str, ...] = ()
    operation: str = ""
    shortcut: Shortcut | None = None
    schedule: str | None = None  # a cron expression: runs made by the platform (maker `system`), besides makers'
    # Finishes (or removes) what a step of an earlier run left half done when its process died, before this run takes
    # anything in; says what it did, a line each (e.g. payroll.finish_payroll_files).
    recover: Callable[[], list[str]] | None = None

    def __post_init__(self) -> None:
        if not self.operation:
            object.__setattr__(self, "operation", self.dag_id)
        if isinstance(self.intake, FileIntake) != isinstance(self.validate, FileChecks):
            raise TypeError(f"{self.dag_id}: a file is checked by FileChecks, a form by FormCheck")

    @property
    def takes_file(self) -> bool:
        return isinstance(self.intake, FileIntake)

    @property
    def proposal_model(self) -> str:
        """The dbt model proposing what the commit appends: named after the DAG, whatever the operation."""
        return f"{self.dag_id}_proposal"

    @property
    def proposal_table(self) -> str:
        """Where dbt builds the proposal: the table the summary, the digest and the commit read."""
        return f"proposals.{self.proposal_model}"

    def proposal_for(self, taken: Taken) -> ProposalRef:
        """The rows a run proposes: the proposal model's table, keyed by the run's upload or request."""
        if self.takes_file:
            return ProposalRef(self.operation, self.proposal_table, upload_id=int(taken["upload_id"]))
        return ProposalRef(self.operation, self.proposal_table, request_id=int(taken["request_id"]))
