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
SUPERSET_WEBSERVER_TIMEOUT = 120
