"""A task process forgets the secrets that only Airflow's services need (security review M8).

The services read the Fernet key, the JWT and API secret keys and the metadata database's owner from
`airflow.cfg` (0600; `Instance.write_airflow_config`), so none of them is in any process environment.
A task process is forked from the scheduler's executor worker, though, and inherits that configuration.
Task code, and dbt, GX or a crafted input that makes them read something, needs none of it: the task
talks to Airflow with the short-lived token its supervisor hands it, and Airflow itself replaces the
metadata database URL in a task process (`block_orm_access`). So the first thing a task process does
(the task runner's `on_starting` listener call, before the DAG file is parsed) is to drop the rest
from its environment, from both configuration objects and from the cached Fernet instances. If that
fails, the task process exits rather than run with them.

What this does not reach: a forked task holds a copy of the scheduler's memory, so code running in it
can still dig out objects the scheduler made (its database session and engine, with the owner's URL;
the executor's token signer once it has been used) and, as the same system user, read `airflow.cfg`.
Only a task started afresh as another system user is out of reach of those (README, "Secrets").
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from airflow.listeners import hookimpl

SERVICE_SECRETS = (
    ("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret"),
    ("webserver", "secret_key"),  # the deprecated name of [api] secret_key, still read first
    # The multi-machine deployment's workers: the broker's and the result backend's credentials.
    ("celery", "broker_url"), ("celery", "result_backend"),
)
DATABASE_URLS = (("database", "sql_alchemy_conn"), ("core", "sql_alchemy_conn"), ("database", "sql_alchemy_conn_async"))
# Airflow's own block_orm_access puts this in place of the metadata database URL in a task process.
BLOCKED_DATABASE_URL = "airflow-db-not-allowed:///"
TASK_RUNNER = "airflow.sdk.execution_time.task_runner"

log = logging.getLogger(__name__)


def environment_names(section: str, key: str) -> list[str]:
    name = f"AIRFLOW__{section.upper()}__{key.upper()}"
    return [name, f"{name}_CMD", f"{name}_SECRET"]


def forget_service_secrets() -> None:
    from airflow.configuration import conf
    from airflow.sdk.configuration import conf as sdk_conf

    replacements = {**dict.fromkeys(SERVICE_SECRETS, ""), **dict.fromkeys(DATABASE_URLS, BLOCKED_DATABASE_URL)}
    for (section, key), replacement in replacements.items():
        for name in environment_names(section, key):
            os.environ.pop(name, None)
        for parser in (conf, sdk_conf):
            if not parser.has_section(section):  # e.g. celery, where its provider is not installed
                parser.add_section(section)
            for option in (f"{key}_cmd", f"{key}_secret"):
                parser.remove_option(section, option)
            parser.set(section, key, replacement)
    for module in ("airflow.models.crypto", "airflow.sdk.crypto"):  # get_fernet() keeps the key it made
        if module in sys.modules:
            sys.modules[module].get_fernet.cache_clear()
    log.info("This task process has forgotten the services' secrets: %s",
             ", ".join(f"{section}.{key}" for section, key in replacements))


@hookimpl
def on_starting(component: Any) -> None:
    task_runner = sys.modules.get(TASK_RUNNER)
    if task_runner is None or not isinstance(component, task_runner.TaskRunnerMarker):
        return
    try:
        forget_service_secrets()
    except BaseException:  # the task runner only logs a listener's error: a task must not run with the secrets
        log.exception("This task process could not forget the services' secrets; it stops here")
        logging.shutdown()
        os._exit(1)
