"""An answer Airflow recorded but did not deliver to its parked approval step is delivered by the approval watchdog
(benefitflow.platform.approval_watchdog), and the run goes on to its commit."""

from __future__ import annotations

import json
import time
from contextlib import closing

import psycopg2
import pytest

from benefitflow.platform.approval_watchdog import INTERVAL_SECONDS, LOST_AFTER
from tests.e2e.test_approval_binding import query

pytestmark = pytest.mark.e2e

DAG_ID = "platform_selftest"


def record_answer_without_resuming(instance, run_id: str, checker: str) -> None:
    """What Airflow 3.3.2's answer handler leaves when the step parks while it runs (see the watchdog's docstring):
    the answer recorded, its task instance still parked. Written as that handler writes it, seconds ago."""
    with closing(psycopg2.connect(instance.database_url("airflow", "airflow"))) as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM ab_user WHERE username = %s", (checker,))
        (user_id,) = cur.fetchone()
        cur.execute(
            "UPDATE hitl_detail SET chosen_options = %s, params_input = '{}', responded_at = now() - interval '10 s',"
            " responded_by = %s WHERE ti_id = (SELECT id FROM task_instance WHERE dag_id = %s AND run_id = %s"
            " AND task_id = 'approve' AND state = 'awaiting_input')",
            (json.dumps(["Approve"]), json.dumps({"id": str(user_id), "name": checker}), DAG_ID, run_id))
        assert cur.rowcount == 1


def test_an_answer_recorded_but_not_delivered_still_reaches_its_step(airflow, airflow_services, inbox_file) -> None:
    maker = airflow("maker")
    name = inbox_file("watched.csv", "code,label,amount\nWATCH-1,small,1.00\n").name
    run_id = maker.trigger(DAG_ID, {"file": name}).json()["dag_run_id"]
    maker.wait_until_parked(DAG_ID, run_id)
    time.sleep((LOST_AFTER.total_seconds() + INTERVAL_SECONDS) * 1.5)  # unanswered, the step is left waiting
    assert maker.task_states(DAG_ID, run_id)["approve"] == "awaiting_input"

    record_answer_without_resuming(airflow_services, run_id, "checker")

    watchdog_log = airflow_services.log_dir / "approval-watchdog.log"
    try:
        assert maker.wait_for_run(DAG_ID, run_id, timeout=120) == "success"
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the watchdog's log ends: {watchdog_log.read_text()[-3000:]}") from exc
    assert query("SELECT d.outcome, d.checker FROM ledger.decisions d JOIN ledger.commits c USING (decision_id)"
                 " WHERE c.dag_id = %s AND c.run_id = %s", DAG_ID, run_id) == [("APPROVED", "checker")]
    assert f"Resumed {DAG_ID} {run_id} approve with the answer recorded for it" in watchdog_log.read_text()
