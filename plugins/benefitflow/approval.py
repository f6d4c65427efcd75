"""Step 4, approve: maker-and-checker on top of Airflow's human-in-the-loop ApprovalOperator.

- The maker is the user who triggered the run.
- Assignees are the active members of the checker group configured for the operation,
  minus the maker. With nobody left, the run fails before any request is made (Airflow
  would otherwise let anyone with the permission answer).
- After the answer a guard re-checks the responder: the maker, or anyone not assigned,
  is refused whatever the configuration, and the run commits nothing.
- Every outcome (approved, rejected, refused, timed out) goes to `ledger.decisions` and
  the audit trail. A timeout rejects.
- Airflow 3.3.2 can mark the task failed when a checker answers within seconds of the
  request (a resume race in the scheduler). The task retries, and a retry that finds the
  answer given to the earlier try uses it instead of asking again.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from benefitflow import audit, db, decisions, directory
from benefitflow.decisions import Decision

APPROVAL_GROUPS_FILE = Path(__file__).with_name("approval_groups.yaml")
SYSTEM_MAKER = "system"


@cache
def approval_groups() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(APPROVAL_GROUPS_FILE.read_text())


def policy_for(operation: str) -> dict[str, Any]:
    try:
        return approval_groups()[operation]
    except KeyError as exc:
        raise ValueError(f"no checker group configured for operation {operation!r} "
                         f"in {APPROVAL_GROUPS_FILE.name}") from exc


# The checker reads the file and its numbers first, the report last (XCom does not keep key order).
SUMMARY_FIRST = ("file", "request", "upload_id", "request_id", "rows_in_file", "valid_rows", "invalid_rows",
                 "invalid_by_rule", "warnings_by_rule")
SUMMARY_LAST = ("error_report",)


def render_body(operation: str, maker: str, summary: dict[str, Any]) -> str:
    """Markdown the checker reads on the Required actions page."""
    lines = [f"**Operation:** {operation}  ", f"**Maker:** {maker} (cannot decide on this request)", ""]
    rank = {key: i for i, key in enumerate(SUMMARY_FIRST)} | {key: 1000 + i for i, key in enumerate(SUMMARY_LAST)}
    ordered = sorted(summary.items(), key=lambda item: rank.get(item[0], len(SUMMARY_FIRST)))
    for key, value in ordered:
        label = key.replace("_", " ")
        if isinstance(value, dict | list) and not value:
            continue
        if isinstance(value, dict):
            lines.append(f"- **{label}:**")
            lines.extend(f"  - {inner}: {inner_value}" for inner, inner_value in value.items())
        elif isinstance(value, list):
            lines.append(f"- **{label}:**")
            lines.extend(f"  - {item}" for item in value)
        else:
            lines.append(f"- **{label}:** {value}")
    return "\n".join(lines)


def decide_outcome(*, chosen: str, responder: str | None, maker: str, assigned: set[str]) -> tuple[str, str | None]:
    """The outcome the ledger records for an answer, and why when it is not the chosen one."""
    if responder is None:
        return "TIMED_OUT", "no checker answered in time"
    if responder == maker:
        return "REFUSED", f"{responder} is the maker of this run and cannot decide on it"
    if responder not in assigned:
        return "REFUSED", f"{responder} is not an assigned checker for this request"
    return ("APPROVED", None) if chosen == ApprovalOperator.APPROVE else ("REJECTED", None)


class MakerCheckerApproval(ApprovalOperator):
    """Approval request routed to the operation's checker group, never to the maker."""

    def __init__(
        self,
        *,
        operation: str,
        summary_task_id: str = "propose",
        task_id: str = "approve",
        **kwargs: Any,
    ) -> None:
        policy = policy_for(operation)
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=5))
        super().__init__(
            task_id=task_id,
            subject=f"Approve {operation}",
            body="(summary is filled in when the request is made)",
            defaults=[ApprovalOperator.REJECT],
            response_timeout=timedelta(hours=float(policy.get("response_timeout_hours", 168))),
            **kwargs,
        )
        self.operation = operation
        self.summary_task_id = summary_task_id
        self.checker_group: str = policy["group"]
        self.policy: str = policy.get("policy", "any")
        if self.policy != "any":
            raise ValueError(f"approval policy {self.policy!r} for {operation} is not supported yet (only 'any')")

    # -- request ------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        maker = self._maker(context)
        earlier = self._earlier_answer(context)
        if earlier is not None:
            self.log.warning("Using the answer already given to this run by %s (an earlier try)",
                             (earlier["responded_by_user"] or {}).get("name", "nobody: timed out"))
            return self.execute_complete(context, earlier)
        summary = context["ti"].xcom_pull(task_ids=self.summary_task_id) or {}
        checkers = [p for p in directory.members_of(self.checker_group) if p.username != maker]
        if not checkers:
            raise AirflowFailException(
                f"no member of {self.checker_group} other than the maker {maker!r} can approve {self.operation}: "
                "add a checker to that group, then clear this task"
            )
        self.assigned_users = [person.as_hitl_user() for person in checkers]
        self.body = render_body(self.operation, maker, summary)
        what = summary.get("file") or summary.get("request") or context["run_id"]
        self.subject = f"Approve {self.operation}: {what} (maker {maker})"
        with db.transaction() as cur:
            audit.record(cur, actor=maker, action=f"{self.operation}.approval_requested", object_type="run",
                         object_id=_run_object(context), outcome="WAITING",
                         details={"group": self.checker_group, "assignees": [p.username for p in checkers]})
        self.log.info("Approval requested from %s", ", ".join(p.username for p in checkers))
        return super().execute(context)

    def _maker(self, context: Any) -> str:
        return context["dag_run"].triggering_user_name or SYSTEM_MAKER

    def _earlier_answer(self, context: Any) -> dict[str, Any] | None:
        """On a retry: the answer already given to this run, so the checker is not asked twice.

        Airflow 3.3.2's resume race can fail the task around the checker's answer. The
        answer is then in the ledger (an earlier try recorded it), or still on this task
        instance's request (Airflow wipes it when the request is written again), or in
        Airflow's HITL history (when the try got a new id). A recorded decision is final:
        deciding again takes a new run.
        """
        ti = context["ti"]
        if ti.try_number <= 1:
            return None
        with db.transaction() as cur:
            recorded = decisions.latest_for_run(cur, ti.dag_id, ti.run_id)
        if recorded is not None:
            return {
                "chosen_options": [self.APPROVE if recorded["outcome"] == "APPROVED" else self.REJECT],
                "params_input": {},
                "responded_at": recorded["decided_at"],
                "responded_by_user": {"id": "", "name": recorded["checker"]} if recorded["checker"] else None,
            }
        found = directory.earlier_response(ti.id, ti.dag_id, ti.run_id, ti.task_id)
        if found is None:
            return None
        return {"chosen_options": found.chosen_options, "params_input": {}, "responded_at": found.responded_at,
                "responded_by_user": found.responded_by}

    # -- answer -------------------------------------------------------------------------
    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        maker = self._maker(context)
        responder_info = event.get("responded_by_user") or None
        responder = responder_info["name"] if responder_info else None
        chosen = (event.get("chosen_options") or [self.REJECT])[0]
        # The task resumes in a fresh worker: who may answer is derived from the group again.
        assigned = {p.username for p in directory.members_of(self.checker_group)} - {maker}
        outcome, reason = decide_outcome(chosen=chosen, responder=responder, maker=maker, assigned=assigned)
        summary = context["ti"].xcom_pull(task_ids=self.summary_task_id) or {}
        decision_id = self._record(context, maker, responder, outcome, reason, summary)
        if outcome != "APPROVED":
            self.log.warning("Decision %s: %s%s", decision_id, outcome, f" ({reason})" if reason else "")
            event = {**event, "chosen_options": [self.REJECT]}
        result = super().execute_complete(context, {k: v for k, v in event.items() if k in _EVENT_KEYS})
        return {**result, "decision_id": decision_id, "outcome": outcome, "maker": maker, "checker": responder}

    def _record(
        self, context: Any, maker: str, responder: str | None, outcome: str, reason: str | None,
        summary: dict[str, Any],
    ) -> int:
        ti = context["ti"]
        with db.transaction() as cur:
            latest = decisions.latest_for_run(cur, ti.dag_id, ti.run_id)
            if latest and latest["outcome"] == outcome and latest["checker"] == responder:
                return int(latest["decision_id"])  # this answer was recorded by an earlier try
            requested_at = audit.last_time(cur, action=f"{self.operation}.approval_requested", object_type="run",
                                           object_id=_run_object(context))
            decision_id = decisions.record(
                cur,
                Decision(
                    operation=self.operation, dag_id=ti.dag_id, run_id=ti.run_id, maker=maker,
                    checker=responder, checker_group=self.checker_group, policy=self.policy,
                    outcome=outcome, reason=reason, upload_id=summary.get("upload_id"),
                    request_id=summary.get("request_id"), summary=summary,
                    requested_at=requested_at,
                ),
            )
            return decision_id


def _run_object(context: Any) -> str:
    return f"{context['ti'].dag_id}/{context['ti'].run_id}"


_EVENT_KEYS = ("chosen_options", "params_input", "responded_at", "responded_by_user", "timedout")
