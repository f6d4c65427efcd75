"""The database logins Superset's managers read the marts through, and what each may see.

superset/regions.json names them: one login per regional Superset role, the all-regions login
(`superset_reader`, the one Superset's database connection is stored with) and a no-region login that
a manager without a regional role gets (fail closed). PostgreSQL enforces the regions: every mart
with a `region` column admits a login to the regions `access.mart_readers` lists for it
(dbt_project/macros/readable_region.sql), keyed on `current_user`, which a login cannot change
because it is a member of no other role. No setting (GUC) is trusted: a reader can set any of its own.

Two halves, because they need different rights:
- `secure_logins` (cluster superuser): the logins, their passwords, their statement timeout, and
  EXECUTE taken away from functions that read other tables or files, sleep or take advisory locks.
- `grant_marts` (the benefitflow database's owner): who sees which regions, and SELECT on the marts.
docker-compose's deployment does the same in deploy/postgres-init.sh and airflow-init.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

REGIONS_FILE = Path(__file__).resolve().parents[3] / "superset" / "regions.json"
# The platform's own roles read every region (the views over the marts filter on current_user too).
PLATFORM_ROLES = ("benefitflow_app", "benefitflow_owner")
# Seconds a reader's statement may run (Superset's query timeout is set to the same, superset_config.py).
STATEMENT_TIMEOUT_VARIABLE = "BENEFITFLOW_READER_STATEMENT_TIMEOUT"
DEFAULT_STATEMENT_TIMEOUT = 60

# pg_catalog functions a reader must not run: they read any table or file by name (outside row-level
# security's view of the query: query_to_xml('select ... from marts.x') runs as the reader, but a
# Superset WHERE never reaches inside it), sleep, change settings, take advisory locks that
# publishing waits on, write WAL or end other sessions. PUBLIC has EXECUTE on most of them by default:
# revoked from PUBLIC and given back only to the platform's own roles where its code uses them.
DENIED_FUNCTION_PATTERN = (
    r"^(query|table|cursor|schema|database)_to_xml"
    r"|^pg_(read_file|read_binary_file|ls_dir|stat_file)$"
    r"|^lo_|^lo(read|write)$|^dblink"
    r"|^pg_sleep|^set_config$|^pg_(try_)?advisory_"
    r"|^ts_stat$|^ts_rewrite$"  # both run a query given as text
    # Writing WAL or a notification, taking a transaction id, ending another session of the same login.
    r"|^pg_logical_emit_message$|^pg_notify$|^txid_current$|^pg_current_xact_id$|^pg_(cancel|terminate)_backend$"
)
PLATFORM_FUNCTION_PATTERN = r"^pg_sleep|^set_config$|^pg_(try_)?advisory_"  # used by the platform and dbt


@dataclass(frozen=True)
class ReaderLogin:
    login: str
    superset_role: str | None  # None: the no-region login, for managers without a regional role
    regions: tuple[str, ...] = ()
    all_regions: bool = False


def reader_logins(path: Path = REGIONS_FILE) -> list[ReaderLogin]:
    """Every login of superset/regions.json: all regions first, then no region, then each regional one."""
    config = json.loads(path.read_text())
    logins = [
        ReaderLogin(config["all_regions"]["login"], config["all_regions"]["superset_role"], all_regions=True),
        ReaderLogin(config["no_region"]["login"], None),
        *(ReaderLogin(entry["login"], entry["superset_role"], tuple(entry["regions"]))
          for entry in config["regional"]),
    ]
    names = [entry.login for entry in logins]
    if len(set(names)) != len(names) or any(not name.startswith("superset_") for name in names):
        raise ValueError(f"{path}: reader logins must be distinct and start with superset_: {names}")
    return logins


def derived_logins(path: Path = REGIONS_FILE) -> list[ReaderLogin]:
    """The logins whose password derives from the installation's reader key (all but superset_reader,
    whose password is its own secret and stored in Superset's database connection)."""
    return [entry for entry in reader_logins(path) if not entry.all_regions]


def login_password(key: str, login: str) -> str:
    """A login's password: sha256 of the installation's secret key and the login's name.

    Derived, so Superset needs one secret (BENEFITFLOW_READER_LOGINS_KEY) for any number of regions, and
    deploy/postgres-init.sh computes the same in SQL: encode(sha256(convert_to(key || ':' || login, 'UTF8')), 'hex').
    superset/superset_config.py has the same one line.
    """
    return hashlib.sha256(f"{key}:{login}".encode()).hexdigest()


def statement_timeout_seconds() -> int:
    value = int(os.environ.get(STATEMENT_TIMEOUT_VARIABLE, DEFAULT_STATEMENT_TIMEOUT))
    if value <= 0:
        raise ValueError(f"{STATEMENT_TIMEOUT_VARIABLE} must be a positive number of seconds, not {value}")
    return value


def secure_logins(cur, passwords: dict[str, str], timeout_seconds: int) -> None:
    """As the cluster superuser, connected to the benefitflow database: logins, timeouts, functions.

    `passwords`: login -> password for every login of reader_logins(). Idempotent.
    """
    for entry in reader_logins():
        login = sql.Identifier(entry.login)
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (entry.login,))
        verb = sql.SQL("ALTER" if cur.fetchone() else "CREATE")
        # NOINHERIT and no membership granted anywhere: SET ROLE has nowhere to go.
        cur.execute(sql.SQL("{} ROLE {} LOGIN NOINHERIT NOCREATEDB NOCREATEROLE PASSWORD %s").format(verb, login),
                    (passwords[entry.login],))
        cur.execute(sql.SQL("GRANT CONNECT ON DATABASE benefitflow TO {}").format(login))
        # A heavy dashboard query is cancelled at the limit, and a reader cannot sit in a transaction
        # holding its locks (set per role: Superset's connections need no settings of their own).
        for setting, value in (("statement_timeout", f"{timeout_seconds}s"),
                               ("idle_in_transaction_session_timeout", f"{timeout_seconds}s")):
            cur.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(login, sql.Identifier(setting),
                                                                    sql.Literal(value)))
    cur.execute("SELECT p.oid::regprocedure::text, p.proname ~ %s FROM pg_proc AS p"
                " JOIN pg_namespace AS n ON n.oid = p.pronamespace"
                " WHERE p.proname ~ %s AND (n.nspname = 'pg_catalog' OR p.proname ~ '^dblink')",
                (PLATFORM_FUNCTION_PATTERN, DENIED_FUNCTION_PATTERN))
    for signature, platform_uses_it in cur.fetchall():
        # regprocedure's text is a valid, schema-qualified signature as PostgreSQL prints it.
        function = sql.SQL(signature)
        cur.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(function))
        if platform_uses_it:
            cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                function, sql.SQL(", ").join(map(sql.Identifier, PLATFORM_ROLES))))


def grant_marts(cur) -> list[str]:
    """As the benefitflow database's owner: who sees which regions, and SELECT on the marts.

    A mart with a region column is granted only once it is protected (a table with row-level security
    and the readers' policy, or a view filtering on access.mart_readers); returns the unprotected ones,
    which dbt's next build protects (dbt_project/macros/readable_region.sql).
    """
    logins = reader_logins()
    cur.execute("DELETE FROM access.mart_readers")
    for login, all_regions, regions in [*((role, True, []) for role in PLATFORM_ROLES),
                                        *((e.login, e.all_regions, list(e.regions)) for e in logins)]:
        cur.execute("INSERT INTO access.mart_readers (login, all_regions, regions) VALUES (%s, %s, %s)",
                    (login, all_regions, regions))
    names = sql.SQL(", ").join(sql.Identifier(entry.login) for entry in logins)
    cur.execute(sql.SQL("GRANT USAGE ON SCHEMA marts, access TO {}").format(names))
    cur.execute(sql.SQL("GRANT SELECT ON access.mart_readers TO {}").format(names))
    cur.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE benefitflow_app IN SCHEMA marts"
                        " GRANT SELECT ON TABLES TO {}").format(names))
    unprotected = unprotected_regional_marts(cur)
    cur.execute("SELECT c.relname FROM pg_class AS c WHERE c.relnamespace = 'marts'::regnamespace"
                " AND c.relkind IN ('r', 'v', 'm', 'p') ORDER BY 1")
    for (name,) in cur.fetchall():
        verb = "REVOKE SELECT ON {} FROM {}" if name in unprotected else "GRANT SELECT ON {} TO {}"
        cur.execute(sql.SQL(verb).format(sql.Identifier("marts", name), names))
    return unprotected


def unprotected_regional_marts(cur) -> list[str]:
    """Relations in marts with a region column that do not narrow readers to their regions."""
    cur.execute("""
        SELECT c.relname
          FROM pg_class AS c
          JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'region' AND NOT a.attisdropped
         WHERE c.relnamespace = 'marts'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
           AND CASE WHEN c.relkind = 'v' THEN NOT (
                        coalesce(c.reloptions @> '{security_barrier=true}', false) AND EXISTS (
                        SELECT 1 FROM pg_depend AS d JOIN pg_rewrite AS r ON r.oid = d.objid
                         WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = c.oid
                           AND d.refobjid = 'access.mart_readers'::regclass))
                    ELSE NOT (c.relrowsecurity AND EXISTS (
                        SELECT 1 FROM pg_policy AS p WHERE p.polrelid = c.oid AND p.polname = 'readers_by_region'))
               END
         ORDER BY 1""")
    return [name for (name,) in cur.fetchall()]
