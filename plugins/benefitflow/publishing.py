"""What a workflow's publish rebuilds: the dbt models downstream of the ledger tables its commit writes.

A workflow names the ledger tables its commit appends to (`writes`); dbt's own lineage turns them
into the selection (`source:ledger.<table>+`: every table model reading the table, directly or
through other models, and the views over those tables, which a table rebuild would drop). The commit checks
the names against what its transaction actually wrote (`check_writes`), so the list cannot drift
from the code: a commit writing a table its workflow does not name is refused before it lands.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg2.extensions

from benefitflow import db, dbt_runner

# Every commit records its commit, and the decision and audit events it rests on.
BOOKKEEPING = ("audit_events", "commits", "decisions")
PUBLISH_LOCK = "benefitflow.publish"
NEVER_PUBLISHED = ("tag:propose",)  # proposals are built by their own run's propose step, never by a publish


class UndeclaredWrite(RuntimeError):
    """A commit wrote a ledger table its workflow does not name: its publish would miss models."""


def selection(writes: Iterable[str]) -> tuple[str, ...]:
    """dbt selectors: the tables downstream of each written ledger table, and the views downstream of a table.

    A view over the ledger alone (staging, some marts) shows new rows without a rebuild; a view over a
    rebuilt table is rebuilt too, since the table's rebuild drops it (`drop ... cascade`).
    """
    return tuple(
        selector
        for table in sorted({*writes, *BOOKKEEPING})
        for selector in (f"source:ledger.{table}+,config.materialized:table",
                         f"source:ledger.{table}+,config.materialized:incremental",
                         f"source:ledger.{table}+,config.materialized:table+,config.materialized:view")
    )


def publish(writes: Iterable[str]) -> dict[str, Any]:
    """`dbt run` of the models downstream of `writes`, in this process; each model's status and seconds.

    Publishes take turns (PUBLISH_LOCK): two at once would drop and recreate the same relations under
    each other (selections overlap: every commit writes decisions). The data tests are not run here:
    they scan whole tables, so their cost grows with the registry, not with the change; `dbt build`
    runs them (`make up`, the test suite, an operator's rebuild).
    """
    with db.session_lock(PUBLISH_LOCK):
        nodes = dbt_runner.run(["run", "--select", *selection(writes), "--exclude", *NEVER_PUBLISHED])
    return {
        "selection": list(selection(writes)),
        "models": {node.name: {"status": node.status, "seconds": node.seconds} for node in nodes},
    }


def written_tables(cur: psycopg2.extensions.cursor) -> set[str]:
    """The ledger tables this transaction has inserted into, updated or deleted from so far."""
    cur.execute("SELECT relname FROM pg_stat_xact_user_tables"
                " WHERE schemaname = 'ledger' AND n_tup_ins + n_tup_upd + n_tup_del > 0")
    return {row[0] for row in cur.fetchall()}


def check_writes(cur: psycopg2.extensions.cursor, operation: str, writes: Iterable[str]) -> None:
    undeclared = written_tables(cur) - {*writes, *BOOKKEEPING}
    if undeclared:
        raise UndeclaredWrite(
            f"{operation}: the commit wrote ledger tables its workflow does not publish from "
            f"({', '.join(sorted(undeclared))}); add them to the workflow's `writes`"
        )
