"""Delivers checkers' answers that Airflow recorded but did not hand to their waiting approval step.

An approval step parks in `awaiting_input` until a checker answers; the answer (Airflow's Core API) resumes
it. In Airflow 3.3.2 an answer given in the instant the step parks can be lost: the answer's handler reads the
task instance before locking it, the step parks in between, and the handler, still seeing it running, records
the answer without resuming the step (`update_hitl_detail` in api_fastapi/core_api/routes/public/hitl.py; the
park side handles the other order). The run then waits for ever, and the request cannot be answered again
(409). Seen once in 20 runs answered within a second (`make bench-airflow EXECUTOR=celery`, stop 44).

This service (`python -m benefitflow.platform.approval_watchdog`, started with Airflow's services) resumes such
a step with the answer recorded, as Airflow's own timeout sweep (`check_awaiting_input_timeouts`) does once a
response deadline passes: the same event, the same locks, the same call. It never makes an answer up: a step
with no recorded answer is left waiting; and what the answer approves is checked by the step as always (the
proposal's digest, the checker not the maker).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# An answer is resumed by its own handler within milliseconds; one still undelivered after this was lost.
LOST_AFTER = timedelta(seconds=5)
INTERVAL_SECONDS = float(os.environ.get("BENEFITFLOW_APPROVAL_WATCHDOG_INTERVAL", "5"))

log = logging.getLogger("benefitflow.approval_watchdog")


def resume_lost_answers(session: Session) -> list[str]:
    """Resume every parked approval step whose answer was recorded more than LOST_AFTER ago; their names."""
    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.sqlalchemy import with_row_locks
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import contains_eager

    query = (select(TaskInstance)
             .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
             .where(TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    HITLDetail.responded_at < timezone.utcnow() - LOST_AFTER)
             .options(contains_eager(TaskInstance.hitl_detail))  # the join above, not a second one
             .limit(100))
    # As the scheduler's sweep: only the task instances locked, and those another process holds skipped.
    stranded = session.scalars(with_row_locks(query, of=TaskInstance, session=session, skip_locked=True)).all()
    resumed = []
    for ti in stranded:  # read in this session, under the lock: the answer as recorded now
        handle_event_submit(TriggerEvent(ti.hitl_detail.as_resume_event_payload(timedout=False)), task_instance=ti,
                            session=session)
        resumed.append(f"{ti.dag_id} {ti.run_id} {ti.task_id}")
    session.flush()
    return resumed


def run(stop: threading.Event) -> None:
    from airflow.utils.session import create_session

    log.info("Watching for approval answers Airflow recorded but did not deliver (every %.0f s)", INTERVAL_SECONDS)
    while not stop.wait(INTERVAL_SECONDS):
        try:
            with create_session() as session:
                for step in resume_lost_answers(session):
                    log.warning("Resumed %s with the answer recorded for it (Airflow had not delivered it)", step)
        except Exception:  # the database restarting, say: the next round tries again
            log.exception("Could not look for undelivered answers; trying again in %.0f s", INTERVAL_SECONDS)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def stopping(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    run(stop)


if __name__ == "__main__":
    main()
