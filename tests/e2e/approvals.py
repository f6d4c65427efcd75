"""A run through the running services as a maker starts it and a checker approves it: the one way the e2e tests do it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from benefitflow_dev.airflow_client import AirflowClient
from benefitflow_dev.instance import Instance
from tests.e2e.browser import open_pending_request, screenshot


def approved(maker: AirflowClient, checker: AirflowClient, dag_id: str, conf: dict[str, Any],
             expect_in_body: list[str], *, not_answering: tuple[AirflowClient, ...] = (),
             seen_by: tuple[Page, Instance] | None = None) -> str:
    """Triggered by the maker; the checker's request says what `expect_in_body` says; neither the maker nor any of
    `not_answering` (checkers of other groups) may answer; the checker approves and the run succeeds.

    `seen_by`: the checker's signed-in browser page (and the services), which opens the request: its grouped
    sections are checked and a screenshot kept (test-artifacts/screenshots/approval_request_<dag>.png)."""
    response = maker.trigger(dag_id, conf)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    maker.wait_until_parked(dag_id, run_id)
    (request,) = [p for p in checker.pending_approvals() if p["task_instance"]["dag_run_id"] == run_id]
    for line in expect_in_body:
        assert line in request["body"], request["body"]
    if seen_by is not None:
        page, instance = seen_by
        open_pending_request(page, instance, run_id)
        expect(page.get_by_role("heading", name="What", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="How many and how much", exact=True)).to_be_visible()
        screenshot(page, f"approval_request_{dag_id}")
    for refused in (maker, *not_answering):
        assert refused.answer(dag_id, run_id, "Approve").status_code == 403  # not an assignee
    assert checker.answer(dag_id, run_id, "Approve").status_code == 200
    assert checker.wait_for_run(dag_id, run_id) == "success"
    return run_id
