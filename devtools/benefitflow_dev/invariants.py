"""What must hold after any failure and any load (issue 24): checked by the fault tests and the soak.

- the audit chain and the ledger's references verify;
- nothing is committed twice (an upload or a request by two commits);
- no bill is open in two payrolls (neither PAID nor FAILED in either);
- every committed payroll's file is in the outbox with the sha256 its commit recorded;
- the published state is what a full rebuild from the ledger gives, row for row (`rebuild_differences`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
from psycopg2 import sql

from benefitflow.core import audit, config, dbt_runner
from benefitflow.workflows.inputs import checksum

STATE_SCHEMAS = ("registry", "programmes", "payments", "grievances", "marts")

_COMMITTED_TWICE = """
SELECT 'upload ' || upload_id FROM ledger.commits WHERE upload_id IS NOT NULL GROUP BY upload_id HAVING count(*) > 1
UNION ALL
SELECT 'request ' || request_id FROM ledger.commits WHERE request_id IS NOT NULL GROUP BY request_id HAVING count(*) > 1
"""

_OPEN_IN_TWO_PAYROLLS = """
SELECT 'bill ' || pb.bill_id FROM ledger.payroll_bills pb
WHERE NOT EXISTS (SELECT FROM ledger.bill_events e WHERE e.bill_id = pb.bill_id AND e.payroll_id = pb.payroll_id
                  AND e.status IN ('PAID', 'FAILED'))
GROUP BY pb.bill_id HAVING count(*) > 1
"""


def broken(database_url: str, payroll_folder: Path) -> list[str]:
    """Each invariant but the rebuild's that does not hold, a line each (none: all hold)."""
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        found = [f"audit chain broken at {where}" for where in [audit.first_break(cur)] if where]
        found += [f"reference broken: {line}" for line in audit.reference_breaks(cur)]
        cur.execute(_COMMITTED_TWICE)
        found += [f"committed twice: {what}" for (what,) in cur.fetchall()]
        cur.execute(_OPEN_IN_TWO_PAYROLLS)
        found += [f"open in two payrolls: {what}" for (what,) in cur.fetchall()]
        cur.execute("SELECT file_name, sha256 FROM ledger.payroll_exports ORDER BY payroll_id")
        found += [f"payroll file {name}: {problem}" for name, sha256 in cur.fetchall()
                  if (problem := _file_problem(payroll_folder / name, sha256))]
    return found


def _file_problem(path: Path, sha256: str) -> str | None:
    if not path.is_file():
        return "missing"
    return None if checksum(path)[0] == sha256 else "not the file its commit recorded"


def state_tables(excluding: str | None = None) -> list[tuple[str, str]]:
    """Every table (not view) the publishes keep, as (schema, name); without those whose name has `excluding`."""
    return sorted((spec["schema"], spec["name"]) for spec in dbt_runner.manifest()["nodes"].values()
                  if spec["resource_type"] == "model" and spec["schema"] in STATE_SCHEMAS
                  and spec["config"]["materialized"] in ("table", "incremental")
                  and not (excluding and excluding in spec["name"]))


def rebuild_differences(tables: list[tuple[str, str]] | None = None) -> dict[str, tuple[int, int]]:
    """The state rebuilt whole from the ledger (`dbt run --full-refresh`), compared with what the publishes kept: for
    each table that differs, (rows only before, rows only after). Nothing may publish meanwhile."""
    tables = tables if tables is not None else state_tables()
    with kept_aside(tables) as compare:
        rebuilt = dbt_runner.run(["run", "--full-refresh", "--select", *(name for _, name in tables)])
        if failed := {node.name for node in rebuilt if node.status != "success"}:
            raise RuntimeError(f"the full rebuild failed for {sorted(failed)}")
        return compare()


@contextmanager
def kept_aside(tables: list[tuple[str, str]]) -> Iterator[Callable[[], dict[str, tuple[int, int]]]]:
    """Copies of `tables` on a connection of their own; the callable gives, for each table that differs now,
    how many rows are only in the copy and only in the table (EXCEPT ALL both ways: duplicates count)."""
    with closing(psycopg2.connect(config.database_url())) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for schema, name in tables:
                cur.execute(sql.SQL("CREATE TEMP TABLE {} AS TABLE {}").format(
                    sql.Identifier(f"kept_{schema}_{name}"), sql.Identifier(schema, name)))

            def compare() -> dict[str, tuple[int, int]]:
                differences = {}
                for schema, name in tables:
                    kept, now = sql.Identifier(f"kept_{schema}_{name}"), sql.Identifier(schema, name)
                    cur.execute(sql.SQL("SELECT (SELECT count(*) FROM (TABLE {kept} EXCEPT ALL TABLE {now}) a),"
                                        " (SELECT count(*) FROM (TABLE {now} EXCEPT ALL TABLE {kept}) b)").format(
                                            kept=kept, now=now))
                    only_kept, only_now = cur.fetchone()
                    if only_kept or only_now:
                        differences[f"{schema}.{name}"] = (only_kept, only_now)
                return differences

            yield compare
