"""A task process forgets the secrets that only Airflow's services need (security review M8).

The services read the Fernet key, the JWT and API secret keys and the metadata database's owner from
`airflow.cfg` (0600; `Instance.write_airflow_config`), so none of them is in any process environment.
A task process is forked from the scheduler's worker, though, and inherits that configuration in
memory. Task code, and dbt, GX or a crafted input that makes them read something, needs none of it:
the task talks to Airflow with the short-lived token its supervisor hands it, and Airflow itself
replaces the metadata database URL in a task process (`block_orm_access`). So the first thing a task
process does (the task runner's `on_starting` listener call, before the DAG file is parsed) is to
drop the rest from its environment and from both configuration objects.

Same user, same limits: a task process still runs as the services' user, so what that user can
read (`airflow.cfg` included) a task can read too. The boundary that holds against code running in
a task is a worker on another machine or user; deploy/README.md says how.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.listeners import hookimpl

SERVICE_SECRETS = (("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret"),
                   # The multi-machine deployment's workers: the broker's and the result backend's credentials.
                   ("celery", "broker_url"), ("celery", "result_backend"))
# Airflow's own block_orm_access puts this in place of the metadata database URL in a task process.
BLOCKED_DATABASE_URL = "airflow-db-not-allowed:///"

log = logging.getLogger(__name__)


def environment_names(section: str, key: str) -> list[str]:
    name = f"AIRFLOW__{section.upper()}__{key.upper()}"
    return [name, f"{name}_CMD", f"{name}_SECRET"]


def forget_service_secrets() -> None:
    from airflow.configuration import conf
    from airflow.sdk.configuration import conf as sdk_conf

    replacements = {**dict.fromkeys(SERVICE_SECRETS, ""), ("database", "sql_alchemy_conn"): BLOCKED_DATABASE_URL}
    for (section, key), replacement in replacements.items():
        for name in environment_names(section, key):
            os.environ.pop(name, None)
        for parser in (conf, sdk_conf):
            if not parser.has_section(section):  # e.g. celery, where its provider is not installed
                parser.add_section(section)
            for option in (f"{key}_cmd", f"{key}_secret"):
                parser.remove_option(section, option)
            parser.set(section, key, replacement)
    log.info("This task process has forgotten the services' secrets: %s",
             ", ".join(f"{section}.{key}" for section, key in replacements))


@hookimpl
def on_starting(component: Any) -> None:
    if type(component).__name__ == "TaskRunnerMarker":
        forget_service_secrets()
