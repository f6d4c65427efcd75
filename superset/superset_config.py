"""Superset configuration for benefitflow; every secret comes from the environment."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_METADATA_URL"]

FEATURE_FLAGS = {
    "DASHBOARD_RBAC": True,
    "ENABLE_TEMPLATE_PROCESSING": False,
}
# Managers query only the marts through a read-only database user; no file uploads, no DML.
PREVENT_UNSAFE_DB_CONNECTIONS = True
CSV_EXPORT = {"encoding": "utf-8"}
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = CACHE_CONFIG
TALISMAN_ENABLED = False
WTF_CSRF_ENABLED = True
SESSION_COOKIE_SAMESITE = "Lax"
ROW_LIMIT = 50000

# -- Row-level security enforced by PostgreSQL -------------------------------------------------------------
# Superset's database connection to the marts is stored with the no-region login, which reads no regional row.
# Each query a user runs connects as the login of the user's regions instead (superset/regions.json);
# PostgreSQL's policies on the marts admit that login to its regions whatever SQL a chart carries. Superset's own
# row-level security filters (superset/provision.py) stay as a second layer.
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import unquote, urlsplit  # noqa: E402

_REGIONS = json.loads(Path(__file__).with_name("regions.json").read_text())
_ALL_REGIONS_LOGIN = _REGIONS["all_regions"]["login"]
_NO_REGION_LOGIN = _REGIONS["no_region"]["login"]
_ALL_REGIONS_ROLES = {_REGIONS["all_regions"]["superset_role"], "Admin"}
_REGIONAL_LOGINS = {entry["superset_role"]: entry["login"] for entry in _REGIONS["regional"]}
_log = logging.getLogger("benefitflow.readers")


def reader_login(role_names: set[str]) -> str:
    """The login for a user holding these Superset roles: all regions, their one region, or none (fail closed).

    A user with two regional roles gets none: no login admits exactly their union (define a regional role
    listing both regions in regions.json, or grant All regions)."""
    if role_names & _ALL_REGIONS_ROLES:
        return _ALL_REGIONS_LOGIN
    regional = {_REGIONAL_LOGINS[name] for name in role_names if name in _REGIONAL_LOGINS}
    return regional.pop() if len(regional) == 1 else _NO_REGION_LOGIN


def _login_password(login: str) -> str:
    # Same derivation as benefitflow.platform.readers.login_password and deploy/postgres-init.sh.
    return hashlib.sha256(f"{os.environ['BENEFITFLOW_READER_LOGINS_KEY']}:{login}".encode()).hexdigest()


def _all_regions_password() -> str:
    # The all-regions login's own secret, as the platform gives it (BENEFITFLOW_READER_DATABASE_URL).
    return unquote(urlsplit(os.environ["BENEFITFLOW_READER_DATABASE_URL"]).password or "")


def DB_CONNECTION_MUTATOR(uri, params, username, security_manager, source):  # noqa: N802 (Superset's name)
    """Widen the marts connection, stored as the no-region login (superset/provision.py), to the requesting
    user's login: all regions, their region, or left as it is (fail closed).

    Any other connection is left as it is. No user (a background job, the CLI) keeps the no-region login."""
    if uri.username != _NO_REGION_LOGIN:
        return uri, params
    user = security_manager.find_user(username=username) if username else None
    login = reader_login({role.name for role in user.roles} if user is not None and user.is_active else set())
    if login == _NO_REGION_LOGIN:
        return uri, params
    _log.debug("user %s reads the marts as %s", username, login)
    password = _all_regions_password() if login == _ALL_REGIONS_LOGIN else _login_password(login)
    return uri.set(username=login, password=password), params


# Per-user cache keys: users with the same chart but different logins must not share cached rows
# (the marts database sets per_user_caching too; this covers every database).
FEATURE_FLAGS["CACHE_QUERY_BY_USER"] = True

# Superset gives up on a query when PostgreSQL cancels it (the readers' statement_timeout, set by
# benefitflow.platform.readers from the same variable), and its web requests wait a little longer than that, so a
# manager sees the database's "canceling statement due to statement timeout" rather than a dropped request.
READER_STATEMENT_TIMEOUT = int(os.environ.get("BENEFITFLOW_READER_STATEMENT_TIMEOUT", "60"))
SQLLAB_TIMEOUT = READER_STATEMENT_TIMEOUT
SQLLAB_ASYNC_TIME_LIMIT_SEC = READER_STATEMENT_TIMEOUT
SUPERSET_WEBSERVER_TIMEOUT = READER_STATEMENT_TIMEOUT + 30

# A second layer in SQL Lab (charts' ad-hoc SQL is not checked against it, PostgreSQL's grants are what hold):
# Superset's own list plus what benefitflow.platform.readers takes away from the readers.
from superset.config import DISALLOWED_SQL_FUNCTIONS  # noqa: E402

DISALLOWED_SQL_FUNCTIONS = {**DISALLOWED_SQL_FUNCTIONS, "postgresql": DISALLOWED_SQL_FUNCTIONS["postgresql"] | {
    "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
    "database_to_xml_and_xmlschema", "pg_stat_file", "lo_get", "lo_import", "lo_export", "lo_open", "loread",
    "set_config", "pg_sleep_for", "pg_sleep_until", "pg_advisory_lock", "pg_advisory_xact_lock",
    "pg_advisory_lock_shared", "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
}}
