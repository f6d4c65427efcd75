"""Least privilege: Superset's reader sees marts only; the app user cannot rewrite history."""

from contextlib import closing

import psycopg2
import pytest


def query(url: str, statement: str):
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall() if cur.description else None


@pytest.fixture(scope="module")
def reader_url(database) -> str:
    return database.database_url("superset_reader", "benefitflow")


def test_reader_reads_marts(database, reader_url: str) -> None:
    assert query(reader_url, "SELECT count(*) FROM marts.mart_approvals")[0][0] >= 0


@pytest.mark.parametrize("relation", ["intake.uploads", "ledger.decisions", "ledger.audit_events",
                                      "registry.selftest_records", "staging.stg_ledger__decisions"])
def test_reader_cannot_read_outside_marts(reader_url: str, relation: str) -> None:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(reader_url, f"SELECT 1 FROM {relation} LIMIT 1")


def test_reader_cannot_write_marts(reader_url: str) -> None:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(reader_url, "DELETE FROM marts.mart_approvals")


def test_reader_cannot_reach_the_airflow_database(database) -> None:
    with pytest.raises(psycopg2.OperationalError):
        query(database.database_url("superset_reader", "airflow"), "SELECT 1")


def test_app_user_cannot_alter_the_ledger_schema(database) -> None:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        query(database.app_database_url, "DROP TRIGGER append_only ON ledger.decisions")


def test_a_commit_analyzes_what_it_appended_in_bulk_through_the_owners_function(database) -> None:
    """ANALYZE is the owner's: the app asks migration 015's function, once per min_rows appended."""
    from benefitflow import audit

    with closing(psycopg2.connect(database.app_database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT ledger.refresh_statistics(2)")
        assert cur.fetchone()[0] == []
        for n in range(3):
            audit.record(cur, actor="test", action="test.bulk", object_type="test", object_id=n, outcome="OK")
        cur.execute("SELECT ledger.refresh_statistics(2)")
        assert cur.fetchone()[0] == ["audit_events"]
        cur.execute("SELECT pg_stat_clear_snapshot(); SELECT last_analyze >= now()"
                    " FROM pg_stat_user_tables WHERE relid = 'ledger.audit_events'::regclass")
        assert cur.fetchone()[0]
        cur.execute("SELECT ledger.refresh_statistics(2)")
        assert cur.fetchone()[0] == [], "analyzed again without two more rows"
        for n in range(2):
            audit.record(cur, actor="test", action="test.bulk", object_type="test", object_id=n, outcome="OK")
        cur.execute("SELECT ledger.refresh_statistics(2)")
        assert cur.fetchone()[0] == ["audit_events"]
        conn.rollback()


def test_statistics_wait_for_nobody_and_are_asked_for_only_after_rows(database) -> None:
    """A table someone else is analyzing or vacuuming is left as it is after a second (lock_timeout), and the
    commit goes on; the app cannot make the function analyze tables it has not appended to."""
    from benefitflow import audit

    with closing(psycopg2.connect(database.owner_database_url)) as holder, holder.cursor() as held, \
            closing(psycopg2.connect(database.app_database_url)) as conn, conn.cursor() as cur:
        held.execute("LOCK TABLE ledger.audit_events IN SHARE UPDATE EXCLUSIVE MODE")
        for n in range(2):
            audit.record(cur, actor="test", action="test.bulk", object_type="test", object_id=n, outcome="OK")
        cur.execute("SELECT ledger.refresh_statistics(2)")
        assert cur.fetchone()[0] == []
        holder.rollback()
        cur.execute("SELECT ledger.refresh_statistics(2)")
        assert cur.fetchone()[0] == ["audit_events"], "not marked analyzed when it was skipped"
        conn.rollback()
        with pytest.raises(psycopg2.errors.RaiseException, match="at least 1"):
            cur.execute("SELECT ledger.refresh_statistics(0)")
        conn.rollback()
