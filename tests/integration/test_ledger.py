"""The ledger is append-only for everyone, and the audit chain exposes tampering."""

from contextlib import closing

import psycopg2
import psycopg2.extras
import pytest

from benefitflow import audit, db
from benefitflow.platform import cli, postgres

LEDGER_TABLES = ["decisions", "commits", "audit_events", "selftest_records", "registry_schemas", "households",
                 "individual_versions", "plan_versions", "beneficiary_status_transitions", "beneficiary_versions",
                 "payment_cycles", "bills", "bill_events", "payrolls", "payroll_bills", "payroll_events",
                 "payroll_exports", "grievance_status_transitions", "grievances", "grievance_events"]


def ledger_tables_in_database(cur) -> list[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ledger' ORDER BY 1")
    return [row[0] for row in cur.fetchall()]


def test_every_ledger_table_is_covered(database) -> None:
    with db.transaction(database.owner_database_url) as cur:
        assert sorted(ledger_tables_in_database(cur)) == sorted(LEDGER_TABLES)


@pytest.mark.parametrize("table", LEDGER_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE ledger.{t} SET {c} = {c}", "DELETE FROM ledger.{t}", "TRUNCATE ledger.{t} CASCADE"])
@pytest.mark.parametrize("who", ["app", "owner"])
def test_update_delete_truncate_are_refused(database, table: str, statement: str, who: str) -> None:
    url = database.app_database_url if who == "app" else database.owner_database_url
    with db.transaction(url) as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema='ledger' AND table_name=%s AND is_identity = 'NO'"
                    " ORDER BY ordinal_position LIMIT 1", (table,))
        column = cur.fetchone()[0]
    with pytest.raises(psycopg2.Error) as error, db.transaction(url) as cur:
        cur.execute(statement.format(t=table, c=column))
    assert error.value.pgcode == "42501"  # insufficient_privilege: a grant or the append-only trigger


def test_the_owner_is_refused_by_the_trigger_itself(database) -> None:
    with db.transaction(database.owner_database_url) as cur:
        audit.record(cur, actor="test", action="probe", object_type="test", object_id=1, outcome="OK")
    with pytest.raises(psycopg2.Error, match="append-only"), db.transaction(database.owner_database_url) as cur:
        cur.execute("DELETE FROM ledger.audit_events")


def test_a_decision_approved_by_its_maker_cannot_be_stored(database) -> None:
    with pytest.raises(psycopg2.errors.CheckViolation), db.transaction() as cur:
        cur.execute(
            "INSERT INTO ledger.decisions (operation, dag_id, run_id, maker, checker, checker_group, policy, outcome)"
            " VALUES ('selftest', 'd', 'r', 'maker', 'maker', 'RegistryCheckers', 'any', 'APPROVED')"
        )


def _append_events(n: int) -> list[int]:
    with db.transaction() as cur:
        return [audit.record(cur, actor="tester", action="test.event", object_type="test", object_id=i,
                             outcome="OK", details={"i": i, "quote": "it's"}) for i in range(n)]


def test_the_chain_verifies_and_links_each_row_to_the_previous(database) -> None:
    ids = _append_events(3)
    with db.transaction() as cur:
        assert audit.first_break(cur) is None
        cur.execute("SELECT event_id, prev_hash, row_hash FROM ledger.audit_events WHERE event_id = ANY(%s)"
                    " ORDER BY event_id", (ids,))
        rows = cur.fetchall()
    assert rows[1][1] == rows[0][2] and rows[2][1] == rows[1][2]
    assert len({row[2] for row in rows}) == 3


def _as_superuser_bypassing_triggers(instance, statement: str, params: tuple) -> None:
    with closing(postgres.superuser_connection(instance, "benefitflow")) as conn, conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute(statement, params)


def test_a_changed_row_is_named_as_the_first_break(database) -> None:
    ids = _append_events(3)
    _as_superuser_bypassing_triggers(
        database, "UPDATE ledger.audit_events SET outcome = 'FORGED' WHERE event_id = %s", (ids[1],)
    )
    try:
        with db.transaction() as cur:
            broken = audit.first_break(cur)
        assert broken is not None and broken.event_id == ids[1]
        assert "changed" in broken.problem
    finally:
        _as_superuser_bypassing_triggers(
            database, "UPDATE ledger.audit_events SET outcome = 'OK' WHERE event_id = %s", (ids[1],)
        )
    with db.transaction() as cur:
        assert audit.first_break(cur) is None


def test_a_removed_row_breaks_the_link_of_the_next(database) -> None:
    ids = _append_events(3)
    with db.transaction(database.owner_database_url) as cur:
        cur.execute("SELECT * FROM ledger.audit_events WHERE event_id = %s", (ids[1],))
        saved = cur.fetchone()
    _as_superuser_bypassing_triggers(database, "DELETE FROM ledger.audit_events WHERE event_id = %s", (ids[1],))
    try:
        with db.transaction() as cur:
            broken = audit.first_break(cur)
        assert broken is not None and broken.event_id == ids[2]
        assert "link" in broken.problem
    finally:
        placeholders = ", ".join(["%s"] * len(saved))
        _as_superuser_bypassing_triggers(
            database, f"INSERT INTO ledger.audit_events OVERRIDING SYSTEM VALUE VALUES ({placeholders})",
            tuple(psycopg2.extras.Json(v) if isinstance(v, dict) else v for v in saved),
        )
    with db.transaction() as cur:
        assert audit.first_break(cur) is None


def test_verify_audit_command(database, capsys) -> None:
    ids = _append_events(2)
    assert cli.main(["verify-audit"]) == 0
    assert "intact" in capsys.readouterr().out
    _as_superuser_bypassing_triggers(
        database, "UPDATE ledger.audit_events SET actor = 'mallory' WHERE event_id = %s", (ids[0],)
    )
    try:
        assert cli.main(["verify-audit"]) == 1
        assert f"audit event {ids[0]}" in capsys.readouterr().err
    finally:
        _as_superuser_bypassing_triggers(
            database, "UPDATE ledger.audit_events SET actor = 'tester' WHERE event_id = %s", (ids[0],)
        )
