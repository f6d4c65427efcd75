"""What a workflow's publish rebuilds: the dbt models that read what its commit wrote.

A workflow names the ledger tables its commit appends to (`writes`). The project's own lineage
(the manifest dbt wrote at start-up) turns them into the models to rebuild:

- every table model downstream of a written table, directly or through other models;
- every table model that reads only bookkeeping (commits, decisions, audit events), e.g. the
  approvals mart;
- every incremental model an incremental model in the selection reads (it must take a commit in first).

A model that joins bookkeeping to its own ledger rows (who approved a status change) changes only
when those rows do: the ledger is append-only, and a new decision belongs to the new commit's rows
alone.

Incremental models (the current state over the ledger) rebuild only the entities the commits they
have not taken in yet touched (dbt_project/macros/incremental_state.sql); a change that is a large
share of them rebuilds them whole (change_is_large).

Views are not rebuilt: they show the rows of what they read as soon as it changes, and a table's
rebuild re-points the views over it inside the transaction that swaps it in
(dbt_project/macros/repoint_dependent_views.sql), so no view disappears while a publish runs.

The commit checks `writes` against what its transaction actually wrote (`check_writes`), so the
list cannot drift from the code: a commit writing a table its workflow does not name is refused.
It also leaves fresh planner statistics for what it appended in bulk (`refresh_statistics`): the
incremental models size a commit from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import db, dbt_runner

# Every commit records its commit, and the decision and audit events it rests on.
BOOKKEEPING = ("audit_events", "commits", "decisions")
PUBLISH_LOCK = "benefitflow.publish"
# A commit appending at least this many rows to a ledger table analyzes it (refresh_statistics).
BULK_ROWS = 10_000
# A publish rebuilds the incremental models whole when the change is at least this share of the largest
# of them, and at least this many ledger rows (change_is_large).
LARGE_CHANGE_SHARE, LARGE_CHANGE_MIN_ROWS = 0.25, 10_000


class UndeclaredWrite(RuntimeError):
    """A commit wrote a ledger table its workflow does not name: its publish would miss models."""


def selection(writes: Iterable[str], manifest: dict[str, Any] | None = None) -> list[str]:
    """The names of the models to rebuild after a commit that wrote `writes` (see the module's text)."""
    downstream, inputs_first = _selection(writes, manifest or dbt_runner.manifest())
    return sorted(downstream | inputs_first)


def _selection(writes: Iterable[str], manifest: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(the models that read what the commit wrote, the incremental models they read that do not)."""
    children, parents, nodes = manifest["child_map"], manifest["parent_map"], manifest["nodes"]
    models = {node for node, spec in nodes.items()
              if spec["resource_type"] == "model" and "propose" not in spec["tags"]}
    written = reachable(children, {_ledger(table) for table in writes})
    bookkeeping = {_ledger(table) for table in BOOKKEEPING}
    about_bookkeeping = {node for node in reachable(children, bookkeeping)
                         if _ledger_sources(parents, node) <= bookkeeping}
    tables = {node for node in (written | about_bookkeeping) & models
              if nodes[node]["config"]["materialized"] != "view"}
    inputs_first = _incremental_ancestors(parents, nodes, tables) - tables
    return {nodes[node]["name"] for node in tables}, {nodes[node]["name"] for node in inputs_first}


def _incremental_ancestors(parents: dict[str, list[str]], nodes: dict[str, Any], selected: set[str]) -> set[str]:
    """Incremental models the selected incremental models read: each takes in only commits its inputs have
    taken in (dbt_project/macros/incremental_state.sql), so its inputs run first even when the commit
    changed nothing of theirs (a run that finds nothing to rebuild costs a look-up)."""
    def incremental(node: str) -> bool:
        return node in nodes and is_incremental_state(nodes[node])

    return {ancestor for node in selected if incremental(node)
            for ancestor in reachable(parents, {node}) if incremental(ancestor)}


def is_incremental_state(spec: dict[str, Any]) -> bool:
    """An incremental state model (proposals are incremental too, but take in no commits)."""
    return (spec["resource_type"] == "model" and spec["config"]["materialized"] == "incremental"
            and "propose" not in spec["tags"])


def _ledger(table: str) -> str:
    return f"source.benefitflow.ledger.{table}"


def reachable(edges: dict[str, list[str]], roots: set[str]) -> set[str]:
    """Every node reached from `roots` along `edges` (the manifest's child_map: descendants; parent_map: ancestors)."""
    found: set[str] = set()
    todo = list(roots)
    while todo:
        for node in edges.get(todo.pop(), []):
            if node not in found:
                found.add(node)
                todo.append(node)
    return found


def _ledger_sources(parents: dict[str, list[str]], node: str) -> set[str]:
    return {ancestor for ancestor in reachable(parents, {node}) if ancestor.startswith("source.benefitflow.ledger.")}


def publish(writes: Iterable[str]) -> dict[str, Any]:
    """`dbt run` of the models downstream of `writes`, in this process; each model's status and seconds.

    Publishes take turns (PUBLISH_LOCK): two at once would drop and recreate the same relations under
    each other (selections overlap: the approvals mart is in every one). The data tests are not run here:
    they scan whole tables, so their cost grows with the registry, not with the change; `dbt build`
    runs them (`make up`, the test suite, an operator's rebuild).
    """
    manifest = dbt_runner.manifest()
    downstream, inputs_first = _selection(writes, manifest)
    with db.session_lock(PUBLISH_LOCK):
        whole = change_is_large(writes, incremental_relations(downstream, manifest))
        if whole:  # the models the change is large for, whole; the inputs they wait for, as usual (first)
            nodes = dbt_runner.run(["run", "--select", *sorted(inputs_first)]) if inputs_first else []
            nodes += dbt_runner.run(["run", "--full-refresh", "--select", *sorted(downstream)])
        else:
            nodes = dbt_runner.run(["run", "--select", *sorted(downstream | inputs_first)])
    return {"models": {node.name: {"status": node.status, "seconds": node.seconds} for node in nodes},
            "rebuilt_whole": whole}


def incremental_relations(names: Iterable[str], manifest: dict[str, Any]) -> list[str]:
    """schema.name of the incremental state models among `names`."""
    wanted = set(names)
    return sorted(f"{spec['schema']}.{spec['alias']}" for spec in manifest["nodes"].values()
                  if spec["name"] in wanted and is_incremental_state(spec))


def change_is_large(writes: Iterable[str], relations: list[str]) -> bool:
    """Whether the ledger rows these models have not taken in yet are a large share of the largest of them.

    An incremental run deletes and inserts each touched row through every index (about 30 µs a row for
    the registry); a whole rebuild writes the table once and builds its indexes after (about 8 µs a row).
    From about a quarter of the table on, the whole rebuild is the cheaper one (a 1,000,000-person import,
    a payment cycle or payroll of the whole registry); below it, the change's own rows are (a correction).
    """
    if not relations:
        return False
    with db.transaction() as cur:
        cur.execute("SELECT greatest(max(c.reltuples), 0) FROM pg_class c"
                    " WHERE c.oid = ANY (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)", (relations,))
        largest = float(cur.fetchone()[0] or 0)
        cur.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'ledger'"
                    " AND column_name = 'commit_id' AND table_name = ANY (%s) ORDER BY 1", (sorted(set(writes)),))
        with_commits = [table for (table,) in cur.fetchall()]
        if not with_commits:
            return False
        pending = sql.SQL(" + ").join(
            sql.SQL("(SELECT count(*) FROM ledger.{} WHERE commit_id IN (SELECT commit_id FROM pending))").format(
                sql.Identifier(table)) for table in with_commits)
        cur.execute(sql.SQL(
            "WITH pending AS (SELECT c.commit_id FROM ledger.commits c"
            " WHERE EXISTS (SELECT FROM unnest(%s::text[]) AS m (model) WHERE NOT EXISTS ("
            "  SELECT FROM publishing.taken_in_commits t WHERE t.model = m.model AND t.commit_id = c.commit_id)))"
            " SELECT {}").format(pending), (relations,))
        rows = int(cur.fetchone()[0])
    return rows >= max(LARGE_CHANGE_MIN_ROWS, LARGE_CHANGE_SHARE * largest)


def written_tables(cur: psycopg2.extensions.cursor) -> set[str]:
    """The ledger tables this transaction has inserted into, updated or deleted from so far."""
    cur.execute("SELECT relname FROM pg_stat_xact_user_tables"
                " WHERE schemaname = 'ledger' AND n_tup_ins + n_tup_upd + n_tup_del > 0")
    return {row[0] for row in cur.fetchall()}


def refresh_statistics(cur: psycopg2.extensions.cursor) -> list[str]:
    """Analyze each ledger table this transaction appended BULK_ROWS rows or more to since it last did
    (migration 015); the tables analyzed. Commits call it before they end; a commit that reads what it
    appended in bulk calls it before those reads too."""
    cur.execute("SELECT ledger.refresh_statistics(%s)", (BULK_ROWS,))
    return list(cur.fetchone()[0])


def check_writes(cur: psycopg2.extensions.cursor, operation: str, writes: Iterable[str]) -> None:
    undeclared = written_tables(cur) - {*writes, *BOOKKEEPING}
    if undeclared:
        raise UndeclaredWrite(
            f"{operation}: the commit wrote ledger tables its workflow does not publish from "
            f"({', '.join(sorted(undeclared))}); add them to the workflow's `writes`"
        )
