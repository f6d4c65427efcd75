"""Step 4, approve: maker-and-checker on top of Airflow's human-in-the-loop ApprovalOperator.

- The maker is the user who triggered the run.
- The policy of each operation is configuration (`approval_groups.yaml`): `any` (one
  checker decides) or `distinct` with `checkers: N` (N distinct checkers must approve).
  Under `distinct` the DAG has one approval step per checker (`approve_1` ... `approve`);
  each one's assignees exclude the maker and everyone who approved an earlier step, every
  approval but the last is an audit event, and the last writes the decision naming them all.
- Assignees are the active members of the checker group configured for the operation,
  minus the maker (and earlier approvers). With too few left, the run fails before any
  request is made (Airflow would otherwise let anyone with the permission answer).
- After the answer a guard re-checks the responder, by Airflow user id: the maker, or anyone
  not assigned, is refused whatever the configuration, and the run commits nothing.
- An approval is for one exact proposal: the request shows the proposal's digest (computed in
  SQL when proposed, recomputed when the request is made) and records it; at the answer the
  digest is recomputed and, if the proposal changed since the request (upstream steps run
  again, another file), the answer is refused and the run fails saying why. Commit checks the
  digest once more against what it appends.
- Every outcome (approved, rejected, refused, timed out) goes to `ledger.decisions` and
  the audit trail. A timeout rejects.
- Airflow 3.3.2 can mark the task failed when a checker answers within seconds of the
  request (a resume race in the scheduler). The task retries, and a retry that finds the
  answer given to the earlier try uses it instead of asking again — only when it was given
  to the same proposal (digest, upload or request, dag and run).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from benefitflow.core import airflow_users, audit, db
from benefitflow.core.airflow_users import Person
from benefitflow.workflows import decisions, proposal_digest, request_body
from benefitflow.workflows.decisions import Decision
from benefitflow.workflows.declaration import Approval
from benefitflow.workflows.proposal_digest import ProposalRef
from benefitflow.workflows.request_body import DIGEST_KEY, digest_shown, render_body

APPROVAL_GROUPS_FILE = Path(__file__).resolve().parents[1] / "approval_groups.yaml"  # where programmes edit it
SYSTEM_MAKER = "system"


POLICIES = ("any", "distinct")
DEFAULT_RESPONSE_HOURS = 168


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who answers an operation's approval requests, and how many distinct checkers must approve."""

    group: str
    policy: str
    checkers: int
    response_timeout: timedelta


@cache
def approval_groups() -> dict[str, dict[str, Any]]:
    """This installation's overrides of the declared checker groups, by operation (none: an empty file)."""
    return yaml.safe_load(APPROVAL_GROUPS_FILE.read_text()) or {}


@cache
def policy_for(operation: str, default: Approval | None = None) -> ApprovalPolicy:
    """The operation's entry in approval_groups.yaml, else its declaration's default (`default`, which the DAG
    builder and the in-process runner hand over; looked up among the declared workflows when not given)."""
    entry = approval_groups().get(operation)
    if entry is not None:
        return parse_policy(operation, entry)
    if default is None:
        from benefitflow.workflows import catalogue  # imports every workflow module: only when nobody handed it

        workflow = catalogue.by_operation(operation)
        if workflow is None:
            raise ValueError(f"no checker group configured for operation {operation!r} "
                             f"in {APPROVAL_GROUPS_FILE.name}, and no workflow declares it")
        default = workflow.approve
    return parse_policy(operation, {"group": default.group, "policy": "distinct" if default.checkers > 1 else "any",
                                    "checkers": default.checkers if default.checkers > 1 else None})


def parse_policy(operation: str, entry: dict[str, Any]) -> ApprovalPolicy:
    """One entry of the configuration, refused with the operation named when it is not usable."""
    where = f"{APPROVAL_GROUPS_FILE.name}, operation {operation!r}"
    group, policy, checkers = entry.get("group"), entry.get("policy", "any"), entry.get("checkers")
    if not isinstance(group, str) or not group:
        raise ValueError(f"{where}: 'group' must name an Airflow role")
    if policy not in POLICIES:
        raise ValueError(f"{where}: policy {policy!r} is not one of {', '.join(POLICIES)}")
    if policy == "any" and checkers not in (None, 1):
        raise ValueError(f"{where}: policy 'any' is one checker; use policy 'distinct' for {checkers}")
    if policy == "distinct" and not (isinstance(checkers, int) and not isinstance(checkers, bool)
                                     and 2 <= checkers <= 10):
        raise ValueError(f"{where}: policy 'distinct' needs 'checkers', a whole number from 2 to 10")
    hours = entry.get("response_timeout_hours", DEFAULT_RESPONSE_HOURS)
    if not isinstance(hours, int | float) or isinstance(hours, bool) or hours <= 0:
        raise ValueError(f"{where}: response_timeout_hours must be a positive number")
    return ApprovalPolicy(group=group, policy=policy, checkers=checkers or 1,
                          response_timeout=timedelta(hours=float(hours)))


def approval_steps(operation: str, *, proposal_table: str, default: Approval | None = None,
                   **kwargs: Any) -> list[MakerCheckerApproval]:
    """The operation's approval tasks in order: `approve` alone, or `approve_1` ... `approve` for N checkers."""
    needed = policy_for(operation, default).checkers
    return [
        MakerCheckerApproval(operation=operation, proposal_table=proposal_table, step=step, default=default,
                             task_id="approve" if step == needed else f"approve_{step}", **kwargs)
        for step in range(1, needed + 1)
    ]


def decide_outcome(
    *, chosen: str, responder: Person | None, maker: Person, assigned: set[str],
    approved_by: tuple[Person, ...] = (),
) -> tuple[str, str | None]:
    """The outcome the ledger records for an answer, and why when it is not the chosen one.

    People are compared by user id (`assigned` holds ids): a renamed user is the same person,
    a re-created one with an old name is not.
    """
    if responder is None:
        return "TIMED_OUT", "no checker answered in time"
    if responder.user_id == maker.user_id or (not maker.user_id and responder.username == maker.username):
        return "REFUSED", f"{responder.username} is the maker of this run and cannot decide on it"
    if responder.user_id in {person.user_id for person in approved_by}:
        return "REFUSED", f"{responder.username} already approved this run: the policy needs distinct checkers"
    if responder.user_id not in assigned:
        return "REFUSED", f"{responder.username} is not an assigned checker for this request"
    return ("APPROVED", None) if chosen == ApprovalOperator.APPROVE else ("REJECTED", None)


@dataclass(frozen=True)
class Requested:
    """What a request was made for: recorded in its `approval_requested` audit event."""

    digest: str | None
    upload_id: int | None
    request_id: int | None
    maker: Person
    clear_number: int  # how many times the run had been cleared when the request was made

    def matches(self, proposal: ProposalRef, digest: str) -> bool:
        return (self.digest, self.upload_id, self.request_id) == (digest, proposal.upload_id, proposal.request_id)


class ProposalChanged(AirflowFailException):
    """The proposal is no longer the one the request showed: the answer approves nothing."""


class MakerCheckerApproval(ApprovalOperator):
    """Approval request routed to the operation's checker group, never to the maker.

    `step` is this task's place among the N approvals the policy needs (1 under `any`);
    `proposal_table` holds the rows the run proposes, keyed by its upload or request; the request shows the
    `shown_columns` of its first rows (`Proposal.shown`).
    """

    def __init__(
        self,
        *,
        operation: str,
        proposal_table: str,
        shown_columns: tuple[str, ...] = (),
        default: Approval | None = None,
        step: int = 1,
        summary_task_id: str = "propose",
        task_id: str = "approve",
        **kwargs: Any,
    ) -> None:
        policy = policy_for(operation, default)
        if not 1 <= step <= policy.checkers:
            raise ValueError(f"approval step {step} of {operation}: its policy has {policy.checkers} step(s)")
        kwargs.setdefault("retries", 3)
        # Not at once: after the resume race (module doc) the answered attempt's workload may still wait in the
        # executor's queue; a retry queued beside it met it, and the run asked its checker again (seen in `make up`).
        kwargs.setdefault("retry_delay", timedelta(seconds=2))
        super().__init__(
            task_id=task_id,
            subject=f"Approve {operation}",
            body="(summary is filled in when the request is made)",
            defaults=[ApprovalOperator.REJECT],
            response_timeout=policy.response_timeout,
            **kwargs,
        )
        self.operation = operation
        self.proposal_table = proposal_table
        self.shown_columns = tuple(shown_columns)
        self.summary_task_id = summary_task_id
        self.checker_group: str = policy.group
        self.policy: str = policy.policy
        self.needed: int = policy.checkers
        self.step = step

    @property
    def decides(self) -> bool:
        """The last step writes the decision; an earlier one only records its approval."""
        return self.step == self.needed

    # -- request ------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        maker = self._maker(context)
        summary = self._summary(context)
        proposal, digest = self._current_proposal(context, summary)
        if summary.get(DIGEST_KEY) != digest:
            raise ProposalChanged(
                f"the proposal changed after the propose step summarised it (digest "
                f"{proposal_digest.short(summary.get(DIGEST_KEY))} then, {proposal_digest.short(digest)} now): "
                "nobody is asked to approve numbers that are not the proposal's; run the workflow again")
        earlier = self._earlier_answer(context, proposal, digest)
        if earlier is not None:
            self.log.warning("Using the answer already given to this step for proposal %s by %s (an earlier start)",
                             proposal_digest.short(digest),
                             (earlier["responded_by_user"] or {}).get("name", "nobody: timed out"))
            return self.execute_complete(context, earlier)
        approved_by = self._approved_before(self._approvals(context, digest))
        if len(approved_by) < self.step - 1:
            raise AirflowFailException(
                f"approval {self.step} of {self.needed}: the approvals before it were not given again since the run "
                "was cleared (a cleared run asks every checker again): clear from approve_1")
        earlier_ids = {person.user_id for person in approved_by}
        checkers = [p for p in airflow_users.members_of(self.checker_group)
                    if p.user_id != maker.user_id and p.username != maker.username and p.user_id not in earlier_ids]
        still_needed = self.needed - len(approved_by)
        if len(checkers) < still_needed:
            raise AirflowFailException(
                f"{self.operation} needs {self.needed} distinct checker(s) from {self.checker_group}, none of them "
                f"the maker {maker.username!r}; only {len(checkers) + len(approved_by)} can: add checkers to that "
                "group, then clear this task"
            )
        self.assigned_users = [person.as_hitl_user() for person in checkers]
        with db.transaction() as cur:
            shown_rows = request_body.first_rows(cur, proposal, self.shown_columns)
        self.body = render_body(self.operation, maker.username, summary, step=self.step, needed=self.needed,
                                approved_by=tuple(person.username for person in approved_by), first_rows=shown_rows,
                                dag_id=context["ti"].dag_id)
        self._refuse_a_stale_request(context, maker, summary, proposal, digest)
        what = summary.get("file") or summary.get("request") or context["run_id"]
        step_label = f", approval {self.step} of {self.needed}" if self.needed > 1 else ""
        self.subject = (f"Approve {self.operation}: {what} (maker {maker.username}{step_label}, "
                        f"proposal {proposal_digest.short(digest)})")
        with db.transaction() as cur:
            audit.record(cur, actor=maker.username, action=f"{self.operation}.approval_requested", object_type="run",
                         object_id=_run_object(context), outcome="WAITING",
                         details={"group": self.checker_group, "assignees": [p.username for p in checkers],
                                  "assignee_ids": [p.user_id for p in checkers], "step": self.step, "of": self.needed,
                                  "proposal_digest": digest, "upload_id": proposal.upload_id,
                                  "request_id": proposal.request_id, "maker_id": maker.user_id,
                                  "clear_number": _clear_number(context)})
        self.log.info("Approval %d of %d of proposal %s requested from %s", self.step, self.needed,
                      proposal_digest.short(digest), ", ".join(p.username for p in checkers))
        return super().execute(context)

    def _refuse_a_stale_request(self, context: Any, maker: Person, summary: dict[str, Any], proposal: ProposalRef,
                                digest: str) -> None:
        """Fail rather than ask under a request that shows anything else than `self.body`.

        Airflow keeps one request per task instance, made the first time the step runs: when the
        step runs again (cleared, or answered after the steps before it were cleared and ran
        again) the request keeps its first body and assignees. If the proposal (or, under N
        checkers, who approved before) changed since, checkers would read the old numbers while
        an answer would stand for the new ones: the request is withdrawn, an answer already given
        to it is recorded as refused, and it takes a new run to ask about the new proposal.
        """
        ti = context["ti"]
        body = airflow_users.request_body(ti.id)
        if body is None or body == self.body:
            return
        shown = digest_shown(body)
        answer = airflow_users.earlier_response(ti.id, ti.dag_id, ti.run_id, ti.task_id)
        responder = Person(str(answer.responded_by.get("id") or ""), answer.responded_by["name"]) if answer else None
        changed = (f"the proposal changed after the request was made: the request showed proposal "
                   f"{proposal_digest.short(shown)}, the run now proposes {proposal_digest.short(digest)}"
                   if shown != digest else "the request shows other approvers or numbers than this step would now")
        reason = (f"{changed}; the request is withdrawn and no answer to it approves anything "
                  "(Airflow keeps a step's first request: trigger a new run)")
        with db.transaction() as cur:
            requested = _latest_request(cur, self.operation, context, self.step)
        answered = proposal if requested is None else replace(
            proposal, upload_id=requested.upload_id, request_id=requested.request_id)
        self._record(context, maker, responder, "REFUSED", reason, summary, (), answered, shown)
        raise ProposalChanged(reason)

    def _maker(self, context: Any) -> Person:
        name = context["dag_run"].triggering_user_name or SYSTEM_MAKER
        return Person(airflow_users.user_id_of(name) or "", name)

    def _summary(self, context: Any) -> dict[str, Any]:
        return context["ti"].xcom_pull(task_ids=self.summary_task_id) or {}

    def _current_proposal(self, context: Any, summary: dict[str, Any]) -> tuple[ProposalRef, str]:
        """What this run would commit now, and its digest recomputed from the database."""
        upload_id, request_id = summary.get("upload_id"), summary.get("request_id")
        proposal = ProposalRef(self.operation, self.proposal_table,
                               upload_id=None if request_id is not None or upload_id is None else int(upload_id),
                               request_id=None if request_id is None else int(request_id))
        with db.transaction() as cur:
            return proposal, proposal_digest.compute(cur, proposal)

    def _approvals(self, context: Any, digest: str) -> list[tuple[int, Person, datetime]]:
        with db.transaction() as cur:
            return _approvals_given(cur, self.operation, context, digest)

    def _approved_before(self, given: list[tuple[int, Person, datetime]]) -> tuple[Person, ...]:
        """Who approved the earlier steps of this run for this proposal, in order."""
        return tuple(approver for step, approver, _ in given if step < self.step)

    def _earlier_answer(self, context: Any, proposal: ProposalRef, digest: str) -> dict[str, Any] | None:
        """On a retry: the answer already given to this step for this very proposal, so nobody is asked twice.

        Airflow 3.3.2's resume race can fail the task around the checker's answer. The
        answer is then in the ledger (an earlier try recorded it: the decision, or this
        step's approval), or still on this task instance's request (Airflow wipes it when
        the request is written again), or in Airflow's HITL history (when the try got a new
        id). Each counts only if it was given to the same proposal since the run was last
        cleared: a retry reuses an answer, a cleared run asks again. Looked up on a first try
        too: the answered attempt's own workload, left in the executor's queue by the race,
        can start afresh under the first try's number (seen in `make up`: it asked again).
        """
        ti = context["ti"]
        with db.transaction() as cur:
            recorded = decisions.latest_for_run(cur, ti.dag_id, ti.run_id)
            given = {step: (approver, at) for step, approver, at in _approvals_given(cur, self.operation, context,
                                                                                        digest)}
            requested = _latest_request(cur, self.operation, context, self.step)
        if recorded is not None and recorded["run_clear_number"] == _clear_number(context) and decisions.is_for(
                recorded, upload_id=proposal.upload_id, request_id=proposal.request_id, digest=digest):
            checker = Person(recorded["checker_id"] or "", recorded["checker"]) if recorded["checker"] else None
            return _answer(self.APPROVE if recorded["outcome"] == "APPROVED" else self.REJECT, checker,
                           recorded["decided_at"], digest)
        if self.step in given:
            return _answer(self.APPROVE, *given[self.step], digest)
        if requested is None or not requested.matches(proposal, digest) or requested.clear_number != _clear_number(
                context):
            return None  # the earlier request was for another proposal, or before a clear: its answer does not count
        found = airflow_users.earlier_response(ti.id, ti.dag_id, ti.run_id, ti.task_id)
        if found is None or digest_shown(found.body) != digest:
            return None
        return {"chosen_options": found.chosen_options, "params_input": {}, "responded_at": found.responded_at,
                "responded_by_user": found.responded_by, DIGEST_KEY: digest}

    # -- answer -------------------------------------------------------------------------
    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        summary = self._summary(context)
        proposal, digest = self._current_proposal(context, summary)
        with db.transaction() as cur:
            requested = _latest_request(cur, self.operation, context, self.step)
        maker = requested.maker if requested is not None else self._maker(context)
        responder_info = event.get("responded_by_user") or None
        responder = Person(str(responder_info.get("id") or ""), responder_info["name"]) if responder_info else None
        chosen = (event.get("chosen_options") or [self.REJECT])[0]
        given = self._approvals(context, digest)
        approved_by = self._approved_before(given)
        # What the checker answered: the request as Airflow showed it (or, for an answer an earlier
        # try recorded, the proposal it was recorded for).
        shown = event.get(DIGEST_KEY) or digest_shown(airflow_users.request_body(context["ti"].id))
        if shown != digest or requested is None or not requested.matches(proposal, digest):
            reason = (f"the proposal changed after the request was made: the request showed proposal "
                      f"{proposal_digest.short(shown)}, the run now proposes {proposal_digest.short(digest)}; "
                      "this answer approves nothing")
            answered = proposal if requested is None else replace(
                proposal, upload_id=requested.upload_id, request_id=requested.request_id)
            self._record(context, maker, responder, "REFUSED", reason, summary, approved_by, answered, shown)
            raise ProposalChanged(f"{reason}; trigger a new run to ask the checkers about the new proposal")
        # The task resumes in a fresh worker: who may answer is derived from the group again.
        earlier_ids = {person.user_id for person in approved_by}
        assigned = {p.user_id for p in airflow_users.members_of(self.checker_group)} - {maker.user_id, *earlier_ids}
        outcome, reason = decide_outcome(chosen=chosen, responder=responder, maker=maker, assigned=assigned,
                                         approved_by=approved_by)
        if outcome == "APPROVED" and not self.decides:
            if all(step != self.step for step, _, _ in given):  # else recorded by an earlier try
                self._record_approval_given(context, maker, responder, proposal, digest)
            decision_id = None
        else:
            decision_id = self._record(context, maker, responder, outcome, reason, summary, approved_by, proposal,
                                       digest)
        if outcome != "APPROVED":
            self.log.warning("Decision %s: %s%s", decision_id, outcome, f" ({reason})" if reason else "")
            event = {**event, "chosen_options": [self.REJECT]}
        result = super().execute_complete(context, {k: v for k, v in event.items() if k in _EVENT_KEYS})
        return {**result, "decision_id": decision_id, "outcome": outcome, "maker": maker.username,
                "checker": responder.username if responder else None, "step": self.step, "of": self.needed,
                "proposal_digest": digest}

    def _record_approval_given(self, context: Any, maker: Person, responder: Person | None, proposal: ProposalRef,
                               digest: str) -> None:
        with db.transaction() as cur:
            audit.record(cur, actor=responder.username if responder else "system",
                         action=f"{self.operation}.approval_given", object_type="run",
                         object_id=_run_object(context), outcome="APPROVED",
                         details={"step": self.step, "of": self.needed, "maker": maker.username,
                                  "maker_id": maker.user_id, "checker_id": responder.user_id if responder else None,
                                  "group": self.checker_group, "proposal_digest": digest,
                                  "upload_id": proposal.upload_id, "request_id": proposal.request_id,
                                  "clear_number": _clear_number(context)})

    def _record(
        self, context: Any, maker: Person, responder: Person | None, outcome: str, reason: str | None,
        summary: dict[str, Any], approved_by: tuple[Person, ...], proposal: ProposalRef, digest: str | None,
    ) -> int:
        ti = context["ti"]
        checker = responder.username if responder else None
        with db.transaction() as cur:
            latest = decisions.latest_for_run(cur, ti.dag_id, ti.run_id)
            # This answer was recorded by an earlier try; so was a refusal of this request when this one knows no
            # responder (a stale workload the resume race restarted, finding the request refused already).
            if (latest and latest["outcome"] == outcome
                    and (latest["checker"] == checker or (outcome == "REFUSED" and checker is None))
                    and latest["proposal_digest"] == digest and latest["run_clear_number"] == _clear_number(context)):
                return int(latest["decision_id"])
            requested_at = audit.first_time(cur, action=f"{self.operation}.approval_requested", object_type="run",
                                            object_id=_run_object(context))
            return decisions.record(
                cur,
                Decision(
                    operation=self.operation, dag_id=ti.dag_id, run_id=ti.run_id, maker=maker.username,
                    checker=checker, checker_group=self.checker_group, policy=self.policy,
                    outcome=outcome, reason=reason, upload_id=proposal.upload_id,
                    request_id=proposal.request_id, summary=summary,
                    requested_at=requested_at, required_approvals=self.needed,
                    other_approvers=tuple(person.username for person in approved_by),
                    proposal_digest=digest, maker_id=maker.user_id or None,
                    checker_id=responder.user_id or None if responder else None,
                    other_approver_ids=tuple(person.user_id for person in approved_by),
                    run_clear_number=_clear_number(context),
                ),
            )


def _approvals_given(cur: Any, operation: str, context: Any, digest: str) -> list[tuple[int, Person, datetime]]:
    """(step, checker, when) of every approval of this proposal recorded by the steps before the deciding one
    since the run was last cleared (a cleared run starts over)."""
    cur.execute(
        "SELECT (details ->> 'step')::int, coalesce(details ->> 'checker_id', ''), actor, occurred_at"
        " FROM ledger.audit_events"
        " WHERE action = %s AND object_type = 'run' AND object_id = %s AND outcome = 'APPROVED'"
        " AND details ->> 'proposal_digest' = %s AND coalesce((details ->> 'clear_number')::int, 0) = %s"
        " ORDER BY event_id",
        (f"{operation}.approval_given", _run_object(context), digest, _clear_number(context)),
    )
    return [(int(step), Person(user_id, actor), at) for step, user_id, actor, at in cur.fetchall()]


def _latest_request(cur: Any, operation: str, context: Any, step: int) -> Requested | None:
    """What this step's latest approval request was made for (None: no request recorded)."""
    cur.execute(
        "SELECT details ->> 'proposal_digest', (details ->> 'upload_id')::bigint, (details ->> 'request_id')::bigint,"
        " coalesce(details ->> 'maker_id', ''), actor, coalesce((details ->> 'clear_number')::int, 0)"
        " FROM ledger.audit_events"
        " WHERE action = %s AND object_type = 'run' AND object_id = %s AND (details ->> 'step')::int = %s"
        " ORDER BY event_id DESC LIMIT 1",
        (f"{operation}.approval_requested", _run_object(context), step),
    )
    row = cur.fetchone()
    return Requested(row[0], row[1], row[2], Person(row[3], row[4]), row[5]) if row else None


def _answer(option: str, checker: Person | None, responded_at: Any, digest: str) -> dict[str, Any]:
    """An answer recorded by an earlier try, for the proposal `digest`."""
    return {"chosen_options": [option], "params_input": {}, "responded_at": responded_at,
            "responded_by_user": checker.as_hitl_user() if checker else None, DIGEST_KEY: digest}


def _clear_number(context: Any) -> int:
    """How many times the run was cleared (Airflow counts each clear; a retry does not change it)."""
    return int(getattr(context["dag_run"], "clear_number", 0) or 0)


def _run_object(context: Any) -> str:
    return f"{context['ti'].dag_id}/{context['ti'].run_id}"


_EVENT_KEYS = ("chosen_options", "params_input", "responded_at", "responded_by_user", "timedout")
