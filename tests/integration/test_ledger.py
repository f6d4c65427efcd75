"""The ledger is append-only for everyone, and the audit chain exposes tampering."""

import uuid
from contextlib import closing

import psycopg2
import psycopg2.extras
import pytest

from benefitflow.core import audit, db
from benefitflow.platform import cli
from benefitflow_dev import postgres

LEDGER_TABLES = ["decisions", "commits", "audit_events", "selftest_records", "registry_schemas", "households",
                 "payroll_files_published",
                 "individual_versions", "plan_versions", "beneficiary_status_transitions", "beneficiary_versions",
                 "payment_cycles", "bills", "bill_events", "payrolls", "payroll_bills", "payroll_events",
                 "payroll_open_bills", "payroll_exports", "grievance_status_transitions", "grievances", "grievance_events",
                 "duplicate_searches", "duplicate_candidates", "duplicate_reviews"]


def ledger_tables_in_database(cur) -> list[str]:
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ledger'"
                " AND table_type = 'BASE TABLE' ORDER BY 1")
    return [row[0] for row in cur.fetchall()]


def test_every_ledger_table_is_covered(database) -> None:
    with db.transaction(database.owner_database_url) as cur:
        assert sorted(ledger_tables_in_database(cur)) == sorted(LEDGER_TABLES)


def test_the_ledgers_views_write_nothing(database) -> None:
    """A view over the ledger (whom a bill pays now) reads it: no role but its owner holds a right to write through
    one, and none could (it is not updatable, and no trigger writes for it)."""
    with db.transaction(database.owner_database_url) as cur:
        cur.execute("SELECT table_name, is_updatable, is_insertable_into, is_trigger_updatable,"
                    " is_trigger_deletable, is_trigger_insertable_into"
                    " FROM information_schema.views WHERE table_schema = 'ledger' ORDER BY 1")
        views = cur.fetchall()
        cur.execute("SELECT r.rolname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " CROSS JOIN pg_roles r"
                    " WHERE n.nspname = 'ledger' AND c.relkind = 'v' AND r.oid <> c.relowner AND NOT r.rolsuper"
                    "  AND r.rolname NOT LIKE 'pg\\_%'"
                    "  AND has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')")
        writers = cur.fetchall()
    assert views == [("bill_payees", "NO", "NO", "NO", "NO", "NO"), ("bill_recipients", "NO", "NO", "NO", "NO", "NO")]
    assert writers == []


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


# Ledger references are checked once per INSERT statement (migration 020), not by a foreign key per row.
REFERENCE_TRIGGERS = """
SELECT t.tgrelid::regclass::text, t.tgname, encode(t.tgargs, 'escape')
FROM pg_trigger t JOIN pg_proc f ON f.oid = t.tgfoid
WHERE f.proname = 'refuse_missing_references' ORDER BY 1, 2
"""


def test_a_ledger_row_whose_parent_is_missing_is_refused_by_name(database) -> None:
    row = ("INSERT INTO ledger.individual_versions (individual_id, version, commit_id, first_name, last_name, dob,"
           " household_code) VALUES (gen_random_uuid(), 1, {commit}, 'A', 'B', '2000-01-01', {household})")
    with db.transaction() as cur:
        cur.execute("INSERT INTO ledger.decisions (operation, dag_id, run_id, maker, checker, checker_group, policy,"
                    " outcome) VALUES ('test', 'test', %s, 'maker', 'checker', 'RegistryCheckers', 'any', 'REJECTED')"
                    " RETURNING decision_id", (f"references-{uuid.uuid4()}",))
        cur.execute("INSERT INTO ledger.commits (operation, dag_id, run_id, decision_id)"
                    " SELECT operation, dag_id, run_id, decision_id FROM ledger.decisions WHERE decision_id = %s"
                    " RETURNING commit_id", (cur.fetchone()[0],))
        commit = cur.fetchone()[0]
    for values, constraint, key in [
        ({"commit": "-1", "household": "NULL"}, "individual_versions_commit_id_fkey", "(commit_id)=(-1)"),
        ({"commit": str(commit), "household": "'NO-SUCH-HOUSEHOLD'"}, "individual_versions_household_code_fkey",
         "(household_code)=(NO-SUCH-HOUSEHOLD)"),
    ]:
        with pytest.raises(psycopg2.errors.ForeignKeyViolation) as error, db.transaction() as cur:
            cur.execute(row.format(**values))
        assert error.value.diag.constraint_name == constraint
        assert key in error.value.diag.message_detail
    # One statement, a good row and a bad one: neither is appended.
    with pytest.raises(psycopg2.errors.ForeignKeyViolation), db.transaction() as cur:
        cur.execute(row.format(commit=commit, household="NULL")
                    + ", (gen_random_uuid(), 1, -1, 'A', 'B', '2000-01-01', NULL)")
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM ledger.individual_versions WHERE commit_id = %s", (commit,))
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize(("table", "columns", "constraint", "key"), [
    ("intake.request_selection", "(request_id, individual_id) VALUES ({request}, gen_random_uuid())",
     "request_selection_request_id_fkey", "request_id"),
    ("intake.row_errors", "(upload_id, row_number, column_name, rule, message) VALUES ({upload}, 1, 'c', 'r', 'm')",
     "row_errors_upload_id_fkey", "upload_id"),
])
def test_intake_scratch_rows_name_a_request_or_upload_that_exists(database, table: str, columns: str,
                                                                 constraint: str, key: str) -> None:
    """What a request selected and what validation found refer to their request or upload, checked per
    statement (migration 021): one row whose parent is missing refuses the whole statement."""
    with db.transaction() as cur:
        cur.execute(RECORDS["requests"][1])
        request = cur.fetchone()[0]
        cur.execute(RECORDS["uploads"][1])
        upload = cur.fetchone()[0]
    good = columns.format(request=request, upload=upload)
    bad = columns.format(request=-5, upload=-5).split(" VALUES ")[1]
    with pytest.raises(psycopg2.errors.ForeignKeyViolation) as error, db.transaction() as cur:
        cur.execute(f"INSERT INTO {table} {good}, {bad}")
    assert error.value.diag.constraint_name == constraint
    assert f"({key})=(-5)" in error.value.diag.message_detail
    with db.transaction() as cur:
        cur.execute(f"INSERT INTO {table} {good}")
        assert cur.rowcount == 1
    with db.transaction(database.owner_database_url) as cur:  # the statement check, not a per-row foreign key
        cur.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass", (table,))
        assert cur.fetchone()[0] == 0
        cur.execute(REFERENCE_TRIGGERS)
        assert (table, constraint) in {(child, name) for child, name, _ in cur.fetchall()}


def test_every_reference_check_names_a_parent_key_that_exists(database) -> None:
    with db.transaction(database.owner_database_url) as cur:
        cur.execute(REFERENCE_TRIGGERS)
        triggers = cur.fetchall()
        assert len(triggers) >= 30  # the 37 declared references less the ones to tables that are not records
        for child, name, arguments in triggers:
            constraint, parent, child_columns, parent_columns = arguments.split("\\000")[:4]
            assert constraint == name
            cur.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = ANY(%s)"
                        " AND NOT attisdropped", (child, child_columns.split(",")))
            assert cur.fetchone()[0] == len(child_columns.split(",")), name
            cur.execute("SELECT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = %s::oid AND i.indisunique"
                        " AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a"
                        "      WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))"
                        "     = (SELECT array_agg(c ORDER BY c) FROM unnest(%s::text[]) c))",
                        (parent, parent_columns.split(",")))
            assert cur.fetchone()[0], f"{name}: no unique key {parent_columns} in {parent}"
            cur.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::oid"
                        " AND tgname IN ('append_only', 'records_kept')", (parent,))
            assert cur.fetchone(), f"{name}: {parent} could lose the rows the ledger refers to"


RECORDS = {
    "uploads": ("upload_id", "INSERT INTO intake.uploads (kind, file_name, stored_path, sha256, size_bytes, uploaded_by)"
                " VALUES ('test', 'kept.csv', 'kept.csv', encode(sha256(gen_random_uuid()::text::bytea), 'hex'), 0, 'tester')"
                " RETURNING upload_id"),
    "requests": ("request_id", "INSERT INTO intake.requests (kind, parameters, requested_by)"
                 " VALUES ('test', '{}', 'tester') RETURNING request_id"),
}


def test_a_row_appended_with_its_check_switched_off_is_found_by_the_verification(database) -> None:
    """The owner can switch a table's checks off; `verify-audit` checks every reference again over whole tables."""
    grievance = uuid.uuid4()
    with closing(psycopg2.connect(database.owner_database_url)) as connection:
        try:
            with connection.cursor() as cur:
                assert audit.reference_breaks(cur) == []
                cur.execute("ALTER TABLE ledger.grievance_events DISABLE TRIGGER USER")
                cur.execute("INSERT INTO ledger.grievance_events (grievance_id, version, status, commit_id)"
                            " VALUES (%s, 1, 'RECEIVED', -7)", (str(grievance),))
                assert sorted(audit.reference_breaks(cur)) == [
                    "ledger.grievance_events: 1 row(s) break grievance_events_commit_id_fkey, e.g. key (-7)",
                    f"ledger.grievance_events: 1 row(s) break grievance_events_grievance_id_fkey, e.g. key ({grievance})",
                ]
        finally:
            connection.rollback()


@pytest.mark.parametrize("table", sorted(RECORDS))
@pytest.mark.parametrize("who", ["app", "owner"])
def test_uploads_and_requests_are_never_deleted_nor_renumbered(database, table: str, who: str) -> None:
    key, insert = RECORDS[table]
    with db.transaction(database.owner_database_url) as cur:
        cur.execute(insert)
        kept = cur.fetchone()[0]
    url = database.app_database_url if who == "app" else database.owner_database_url
    for statement in [f"DELETE FROM intake.{table} WHERE {key} = {kept}", f"TRUNCATE intake.{table} CASCADE",
                      f"UPDATE intake.{table} SET {key} = DEFAULT WHERE {key} = {kept}"]:
        # Rolled back whatever happens: were the guard missing, TRUNCATE must not empty the shared test database.
        with closing(psycopg2.connect(url)) as connection, pytest.raises(psycopg2.Error) as error:
            try:
                connection.cursor().execute(statement)
            finally:
                connection.rollback()
        assert error.value.pgcode == "42501", statement


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
