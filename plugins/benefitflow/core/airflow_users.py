"""Who is in which Airflow role, and what a checker answered: read from Airflow's metadata.

Airflow's REST API does not return user ids, and the approval request needs them, so
tasks read the FAB user tables through a database user that may SELECT only those
tables and the HITL response tables (`airflow_reader`, granted by the provisioning).
"""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2

from benefitflow.core.config import ConfigurationError

DIRECTORY_URL_VARIABLE = "BENEFITFLOW_AIRFLOW_DIRECTORY_URL"


@dataclass(frozen=True)
class Person:
    user_id: str
    username: str

    def as_hitl_user(self) -> dict[str, str]:
        return {"id": self.user_id, "name": self.username}


@dataclass(frozen=True)
class EarlierResponse:
    chosen_options: list[str]
    responded_by: dict[str, str]
    responded_at: datetime
    try_number: int
    body: str  # the request the answer was given to, as the checker read it


def _connect():
    url = os.environ.get(DIRECTORY_URL_VARIABLE)
    if not url:
        raise ConfigurationError(f"{DIRECTORY_URL_VARIABLE} is not set (the Airflow directory reader)")
    return closing(psycopg2.connect(url))


def members_of(role: str) -> list[Person]:
    """Active users holding `role`, ordered by username."""
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT u.id, u.username FROM ab_user u"
            " JOIN ab_user_role ur ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id"
            " WHERE r.name = %s AND u.active ORDER BY u.username",
            (role,),
        )
        return [Person(str(user_id), username) for user_id, username in cur.fetchall()]


def user_id_of(username: str) -> str | None:
    """The Airflow user id behind a user name (None: no such user, e.g. a run nobody triggered)."""
    with _connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM ab_user WHERE username = %s", (username,))
        row = cur.fetchone()
    return str(row[0]) if row else None


def request_body(ti_id: Any) -> str | None:
    """The body of the approval request this task instance made, as Airflow shows it (None: none made).

    Airflow keeps one request per task instance and does not rewrite an existing one's body, so this,
    not what the task last rendered, is what a checker read.
    """
    with _connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT body FROM hitl_detail WHERE ti_id = %s", (str(ti_id),))
        row = cur.fetchone()
    return None if row is None else str(row[0] or "")


def earlier_response(ti_id: Any, dag_id: str, run_id: str, task_id: str) -> EarlierResponse | None:
    """A human answer given to an earlier try of this task (lost to Airflow's resume race).

    It is either still on this task instance's request (same id: Airflow wipes it when the
    request is written again) or, when the try got a new id, in the HITL history.
    """
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT chosen_options, responded_by, responded_at, 0, body FROM hitl_detail"
            " WHERE ti_id = %s AND responded_at IS NOT NULL AND responded_by IS NOT NULL",
            (str(ti_id),),
        )
        row: Any = cur.fetchone()
        if row is None:
            cur.execute(
                "SELECT h.chosen_options, h.responded_by, h.responded_at, tih.try_number, h.body"
                " FROM hitl_detail_history h"
                " JOIN task_instance_history tih ON tih.task_instance_id = h.ti_history_id"
                " WHERE tih.dag_id = %s AND tih.run_id = %s AND tih.task_id = %s AND tih.map_index = -1"
                "   AND h.responded_at IS NOT NULL AND h.responded_by IS NOT NULL"
                " ORDER BY tih.try_number DESC LIMIT 1",
                (dag_id, run_id, task_id),
            )
            row = cur.fetchone()
    if not row:
        return None
    return EarlierResponse(list(row[0]), dict(row[1]), row[2], int(row[3]), str(row[4] or ""))
