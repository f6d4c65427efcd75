"""Least privilege: Superset's readers see marts only, each its regions; the app user cannot rewrite history."""

import threading
import time
from contextlib import closing

import psycopg2
import pytest

from benefitflow.core import config, db, dbt_runner
from benefitflow.platform import readers
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.workflows.direct import run_steps as run_upload
from benefitflow_dev import postgres
from tests.integration.programme_data import HEADER, tag


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
    from benefitflow.core import audit

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
    from benefitflow.core import audit

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


# -- Superset's readers: regions enforced by PostgreSQL (superset/regions.json, benefitflow.platform.readers) --------
READERS = readers.reader_logins()
REGIONAL = [entry for entry in READERS if entry.regions]
NO_REGION = next(entry for entry in READERS if entry.superset_role is None)
ALL_REGIONS = next(entry for entry in READERS if entry.all_regions)
REGIONAL_MARTS_SQL = ("SELECT c.relname FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid"
                      " AND a.attname = 'region' WHERE c.relnamespace = 'marts'::regnamespace"
                      " AND c.relkind IN ('r', 'v', 'm', 'p') ORDER BY 1")


@pytest.fixture(scope="module")
def people_everywhere(database) -> list[str]:
    """A household of two in every region a login is for, through the registry's own workflow (published to
    the marts, grievances and individual records included); returns the marts with a region column."""
    rows = [f"Amina,Region{code},1980-01-01,F,RR{code},1,HEAD,{region},none\n"
            f"Juma,Region{code},1982-02-02,M,RR{code},0,SPOUSE,{region},none"
            for entry in REGIONAL for region, code in ((region, tag()) for region in entry.regions)]
    path = config.inbox() / f"regions-{tag()}.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    run_upload(INDIVIDUALS, file=path.name, options={"mode": "create"}, maker="maker", checker="checker",
               run_id=tag())
    marts = [name for (name,) in query_as(database.app_database_url, REGIONAL_MARTS_SQL)]
    assert {"mart_registry_individuals", "mart_beneficiaries", "mart_payments", "mart_grievances",
            "mart_individual_record", "mart_plan_capacity"} <= set(marts)
    return marts


def query_as(url: str, statement: str, *args: object) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else []


def regions_seen(url: str, mart: str) -> set[str | None]:
    return {region for (region,) in query_as(url, f"SELECT DISTINCT region FROM marts.{mart}")}


def login_url(database, entry: readers.ReaderLogin) -> str:
    return database.database_url(entry.login, "benefitflow")


def test_every_regional_mart_is_protected_and_every_login_can_read_it(database, people_everywhere) -> None:
    with closing(psycopg2.connect(database.app_database_url)) as conn, conn.cursor() as cur:
        assert readers.unprotected_regional_marts(cur) == []
    for entry in READERS:
        for mart in people_everywhere:
            query_as(login_url(database, entry), f"SELECT 1 FROM marts.{mart} LIMIT 1")


@pytest.mark.parametrize("entry", REGIONAL, ids=lambda entry: entry.login)
def test_a_region_login_reads_its_regions_rows_only(database, people_everywhere, entry) -> None:
    for mart in people_everywhere:
        everyone = regions_seen(database.app_database_url, mart)
        assert regions_seen(login_url(database, entry), mart) == everyone & set(entry.regions), mart
    assert set(entry.regions) <= regions_seen(login_url(database, entry), "mart_registry_individuals")


def test_the_all_regions_login_reads_every_row_and_the_no_region_login_none(database, people_everywhere) -> None:
    for mart in people_everywhere:
        count = f"SELECT count(*) FROM marts.{mart}"
        assert query_as(login_url(database, ALL_REGIONS), count) == query_as(database.app_database_url, count)
        assert query_as(login_url(database, NO_REGION), count) == [(0,)], mart
    # Marts without a region (plan-, cycle-, payroll-level) stay readable by every login.
    plans = "SELECT count(*) FROM marts.mart_benefit_plans"
    assert query_as(login_url(database, NO_REGION), plans) == query_as(database.app_database_url, plans)


@pytest.mark.parametrize("statement", [
    "SELECT query_to_xml('SELECT region, count(*) FROM marts.mart_registry_individuals GROUP BY 1', true, false, '')",
    "SELECT table_to_xml('marts.mart_registry_individuals', true, false, '')",
    "SELECT schema_to_xml('marts', true, false, '')",
    "SELECT database_to_xml(true, false, '')",
    "SELECT cursor_to_xml('c', 1, true, false, '')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_get(1)",
    "SELECT pg_sleep(0)",
    "SELECT pg_advisory_lock(1)",
    "SELECT set_config('role', 'superset_reader', false)",
    "SELECT set_config('statement_timeout', '0', false)",
    "SELECT * FROM ts_stat('SELECT to_tsvector(first_name) FROM marts.mart_registry_individuals')",
    "SELECT pg_logical_emit_message(false, 'x', 'y')",
    "SELECT pg_terminate_backend(pg_backend_pid() + 1)",
    "SELECT txid_current()",
])
def test_readers_cannot_run_functions_that_read_elsewhere_sleep_or_lock(database, statement) -> None:
    for entry in READERS:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query_as(login_url(database, entry), statement)
    query_as(database.app_database_url, "SELECT set_config('benefitflow.test', 'x', true), pg_sleep(0)")


def test_no_reader_holds_execute_on_a_denied_function_through_public_or_otherwise(database) -> None:
    """The revocation itself (several of these are refused to non-superusers anyway, e.g. pg_read_file)."""
    for entry in READERS:
        held = query_as(database.app_database_url,
                        "SELECT p.oid::regprocedure::text FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                        " WHERE p.proname ~ %s AND (n.nspname = 'pg_catalog' OR p.proname ~ '^dblink')"
                        "   AND has_function_privilege(%s, p.oid, 'EXECUTE')",
                        readers.DENIED_FUNCTION_PATTERN, entry.login)
        assert held == [], entry.login


def test_regional_views_are_security_barriers_and_the_dbt_build_keeps_them_so(database, people_everywhere) -> None:
    """Policies do not apply to views: their region filter must run before any condition a reader adds (a cast
    whose error quotes a value could otherwise run on other regions' rows first). A rebuilt view is one again."""
    views = "SELECT c.relname, c.reloptions FROM pg_class AS c WHERE c.relnamespace = 'marts'::regnamespace" \
            " AND c.relkind = 'v' AND c.relname IN ('mart_grievances', 'mart_individual_record') ORDER BY 1"
    expected = [("mart_grievances", ["security_barrier=true"]), ("mart_individual_record", ["security_barrier=true"])]
    assert query_as(database.app_database_url, views) == expected
    with db.transaction(database.app_database_url) as cur:
        cur.execute("ALTER VIEW marts.mart_grievances RESET (security_barrier)")
    with db.transaction(database.owner_database_url) as cur:
        assert readers.unprotected_regional_marts(cur) == ["mart_grievances"]
    dbt_runner.run(["run", "--select", "mart_grievances"])
    assert query_as(database.app_database_url, views) == expected


@pytest.mark.parametrize("entry", [NO_REGION, *REGIONAL], ids=lambda entry: entry.login)
def test_a_region_login_cannot_become_another_nor_widen_through_settings(database, people_everywhere, entry) -> None:
    assert query_as(database.app_database_url, "SELECT count(*) FROM pg_auth_members WHERE member = %s::regrole",
                    entry.login) == [(0,)]
    url = login_url(database, entry)
    for other in ("superset_reader", *(e.login for e in READERS if e != entry), "benefitflow_app", "postgres"):
        for switch in (f'SET ROLE "{other}"', f'SET SESSION AUTHORIZATION "{other}"'):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                query_as(url, switch)
    expected = regions_seen(url, "mart_registry_individuals")
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        # Settings a reader may change are not what the policies read.
        cur.execute("SET benefitflow.region = 'South'; SET row_security = on; SET search_path = access, marts")
        cur.execute("SELECT DISTINCT region FROM marts.mart_registry_individuals")
        assert {region for (region,) in cur.fetchall()} == expected
        cur.execute("SELECT login, all_regions FROM access.mart_readers")
        assert cur.fetchall() == [(entry.login, False)]  # its own row only
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("UPDATE access.mart_readers SET all_regions = true")


def test_a_full_refresh_keeps_the_policies(database, people_everywhere) -> None:
    from benefitflow.core import dbt_runner

    north = REGIONAL[0]
    before = {mart: regions_seen(login_url(database, north), mart) for mart in people_everywhere}
    dbt_runner.run(["run", "--full-refresh", "--select", "mart_registry_individuals", "mart_beneficiaries",
                    "mart_plan_capacity", "mart_grievances", "mart_individual_record"])
    dbt_runner.run(["run", "--select", "mart_registry_individuals"])  # incremental: nothing to change, policy kept
    with closing(psycopg2.connect(database.app_database_url)) as conn, conn.cursor() as cur:
        assert readers.unprotected_regional_marts(cur) == []
    assert {mart: regions_seen(login_url(database, north), mart) for mart in people_everywhere} == before
    assert set(north.regions) <= before["mart_registry_individuals"]


def test_a_readers_statement_is_cancelled_at_the_limit(database) -> None:
    """The limit readers.secure_logins sets (60 s by default, here 1 s for the test), then the default again."""
    passwords = {entry.login: database.secrets[f"db_{entry.login}"] for entry in READERS}
    for entry in READERS:
        assert query_as(login_url(database, entry), "SHOW statement_timeout") == [(
            f"{readers.statement_timeout_seconds() // 60}min",)]
    with closing(postgres.superuser_connection(database, "benefitflow")) as conn, conn.cursor() as cur:
        readers.secure_logins(cur, passwords, 1)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled, match="statement timeout"):
            query_as(login_url(database, NO_REGION), "SELECT count(*) FROM generate_series(1, 10000000000)")
        assert time.monotonic() - started < 10
    finally:
        with closing(postgres.superuser_connection(database, "benefitflow")) as conn, conn.cursor() as cur:
            readers.secure_logins(cur, passwords, readers.statement_timeout_seconds())


def test_a_publish_waits_for_a_reader_in_short_turns_and_then_goes_through(database, monkeypatch) -> None:
    """A reader holding a mart (here an open transaction, released after 6 s; a dashboard query is cancelled at
    its statement_timeout) delays the rebuild of that mart, which tries again after each 1 s lock timeout;
    other readers are not queued behind it for longer than that."""
    from benefitflow.core import dbt_runner

    monkeypatch.setenv(dbt_runner.LOCK_TIMEOUT_VARIABLE, "1")
    reader = psycopg2.connect(login_url(database, ALL_REGIONS))
    reader.cursor().execute("SELECT count(*) FROM marts.mart_benefit_plans")  # keeps its lock until rollback
    release = threading.Timer(6, reader.rollback)
    release.start()
    waits: list[float] = []
    published = threading.Event()

    def other_reader() -> None:  # a dashboard query once the publish waits for its lock (however long dbt takes)
        with closing(postgres.superuser_connection(database, "benefitflow")) as conn, conn.cursor() as cur:
            while not published.is_set():
                cur.execute("SELECT count(*) FROM pg_locks WHERE relation = 'marts.mart_benefit_plans'::regclass"
                            " AND NOT granted")
                if cur.fetchone()[0]:
                    break
                time.sleep(0.05)
            else:
                return
        started = time.monotonic()
        query_as(login_url(database, NO_REGION), "SELECT count(*) FROM marts.mart_benefit_plans")
        waits.append(time.monotonic() - started)

    meanwhile = threading.Thread(target=other_reader)
    meanwhile.start()
    try:
        started = time.monotonic()
        [node] = dbt_runner.run(["run", "--select", "mart_benefit_plans"])
        elapsed = time.monotonic() - started
    finally:
        published.set()
        release.join()
        meanwhile.join()
        reader.close()
    assert node.status == "success" and 5 < elapsed < 30, elapsed
    assert waits and waits[0] < 5, waits  # each try queues it for at most the 1 s lock timeout, never the 6 s
