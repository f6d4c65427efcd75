"""A publish swaps rebuilt relations in without any relation a reader uses disappearing."""

from __future__ import annotations

import threading
from contextlib import closing

import psycopg2
from psycopg2 import sql

from benefitflow.core import config, dbt_runner
from benefitflow.workflows import publish


def published_relations() -> list[tuple[str, str]]:
    """(schema, name) of every table and view a publish builds or re-points: what dashboards and scripts read."""
    nodes = dbt_runner.manifest()["nodes"].values()
    return sorted((node["schema"], node["alias"] or node["name"]) for node in nodes
                  if node["resource_type"] == "model" and "publish" in node["tags"])


def ledger_tables() -> list[str]:
    sources = dbt_runner.manifest()["sources"].values()
    return [source["name"] for source in sources if source["source_name"] == "ledger"]


class Reader(threading.Thread):
    """Reads, over and over until stopped, in the ways dashboards and scripts do; keeps every error.

    Each published relation alone; a table, then a view over it, in one transaction (what an export
    does); two views over the same tables in one statement, in both orders (a SQL Lab join)."""

    def __init__(self, relations: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.relations, self.errors, self.reads = relations, [], 0
        self.stopping = threading.Event()

    def run(self) -> None:
        with closing(psycopg2.connect(config.database_url())) as conn:
            while not self.stopping.is_set():
                for reading in self.readings():
                    try:
                        with conn, conn.cursor() as cur:
                            for statement in reading:
                                cur.execute(statement)
                                cur.fetchall()
                        self.reads += 1
                    except psycopg2.Error as exc:
                        self.errors.append(f"{reading[-1].as_string(conn)}: {str(exc).strip()}")

    def readings(self) -> list[list[sql.Composable]]:
        one = [[sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(*relation))] for relation in self.relations]
        record, grievances = (sql.Identifier("marts", name) for name in ("mart_individual_record", "mart_grievances"))
        return [*one,
                [sql.SQL("SELECT 1 FROM registry.individuals LIMIT 1"), sql.SQL("SELECT 1 FROM {} LIMIT 1").format(record)],
                [sql.SQL("SELECT 1 FROM {} a, {} b LIMIT 1").format(record, grievances)],
                [sql.SQL("SELECT 1 FROM {} a, {} b LIMIT 1").format(grievances, record)]]


def missing_or_left_on_a_backup() -> list[str]:
    with closing(psycopg2.connect(config.database_url())) as conn, conn, conn.cursor() as cur:
        missing = []
        for schema, name in published_relations():
            cur.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',))
            if cur.fetchone()[0] is None:
                missing.append(f"{schema}.{name}")
        cur.execute("SELECT DISTINCT rules.ev_class::regclass::text FROM pg_depend AS dependencies"
                    " JOIN pg_rewrite AS rules ON rules.oid = dependencies.objid"
                    " JOIN pg_class AS read ON read.oid = dependencies.refobjid"
                    " WHERE dependencies.classid = 'pg_rewrite'::regclass AND read.relname LIKE '%%\_\_dbt\_backup'")
        return missing + [f"{view} reads a backup" for (view,) in cur.fetchall()]


def test_a_reader_of_every_published_relation_never_fails_while_publishes_rebuild_them(database) -> None:
    relations = published_relations()
    assert len(relations) > 20 and any(name == "mart_individual_record" for _, name in relations)
    reader = Reader(relations)
    reader.start()
    try:
        for _ in range(3):  # every table model over the ledger, rebuilt three times
            rebuilt = publish.publish(ledger_tables())["models"]
            assert all(model["status"] == "success" for model in rebuilt.values()), rebuilt
    finally:
        reader.stopping.set()
        reader.join()
    assert reader.errors == []
    assert reader.reads > 3 * len(relations)
    assert missing_or_left_on_a_backup() == []


def test_a_view_that_no_longer_fits_its_rebuilt_table_is_rebuilt_by_the_same_build(database) -> None:
    """A model whose columns changed (a deployment): the view over it cannot be re-pointed, goes with the old
    table, and the build that rebuilds both creates it again; a view dbt does not build is dropped."""
    with closing(psycopg2.connect(config.database_url())) as conn, conn, conn.cursor() as cur:
        # What an older version of the project left: a column the grievances model no longer has, read by
        # the grievances mart and by a view of somebody's own.
        cur.execute("ALTER TABLE grievances.grievances ADD COLUMN retired_column integer")
        cur.execute("SELECT pg_get_viewdef('marts.mart_grievances'::regclass)")
        definition = cur.fetchone()[0].rstrip().rstrip(";")
        cur.execute(f"CREATE OR REPLACE VIEW marts.mart_grievances AS SELECT previous.*, (SELECT max(retired_column)"
                    f" FROM grievances.grievances) AS retired_column FROM ({definition}) AS previous")
        cur.execute("CREATE VIEW marts.reads_a_retired_column AS SELECT retired_column FROM grievances.grievances")
    # A changed project is built whole (`make up`, `make rebuild`: stack.build_dbt), as here.
    results = dbt_runner.run(["build", "--full-refresh", "--select", "grievances", "mart_grievances",
                              "--exclude", "test_type:data"])
    assert {node.name: node.status for node in results if node.resource_type == "model"} == {
        "grievances": "success", "mart_grievances": "success"}
    with closing(psycopg2.connect(config.database_url())) as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM marts.mart_grievances")
        cur.execute("SELECT to_regclass('marts.reads_a_retired_column'),"
                    " to_regclass('grievances.grievances__dbt_backup'), to_regclass('marts.mart_grievances__dbt_backup')")
        assert cur.fetchone() == (None, None, None)
        cur.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'marts'"
                    " AND table_name = 'mart_grievances' AND column_name = 'retired_column'")
        assert cur.fetchone() == (0,)
