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


def test_the_app_refreshes_payment_statistics_it_may_not_analyze_itself(database) -> None:
    """After a bulk append the app asks the owner's function for statistics (ANALYZE is the owner's)."""
    app = database.app_database_url
    before = query(app, "SELECT clock_timestamp()")[0][0]
    query(app, "SELECT ledger.refresh_payment_statistics()")
    assert query(app, "SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'ledger' AND last_analyze >= "
                      f"'{before.isoformat()}'::timestamptz ORDER BY relname") == [
        ("bill_events",), ("bills",), ("payroll_bills",)]
