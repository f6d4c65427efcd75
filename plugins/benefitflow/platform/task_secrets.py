"""A task process forgets the secrets that only Airflow's services need (security review M8).

The services read the Fernet key, the JWT and API secret keys and the metadata database's owner from
`airflow.cfg` (0600; written by the one-machine stack, `benefitflow_dev.instance`, or the deployment), so
none of them is in any process environment.
A task process is forked from the scheduler's executor worker, though, and inherits that configuration.
Task code, and dbt, GX or a crafted input that makes them read something, needs none of it: the task
talks to Airflow with the short-lived token its supervisor hands it, and Airflow itself replaces the
metadata database URL in a task process (`block_orm_access`). So the first thing a task process does
(the task runner's `on_starting` listener call, before the DAG file is parsed) is to drop the rest
from its environment, from both configuration objects and from the cached Fernet instances.

A task forked straight from the scheduler would also hold a copy of the scheduler's memory: its
database session and engine (the metadata owner's URL) and its executor's token signer (the JWT
secret). So the scheduler starts its executor workers from a fork server, a fresh interpreter that
imports what tasks need and nothing of the scheduler (`[scheduler] mp_start_method = forkserver`, set by
`benefitflow_dev.instance` and the deployment's settings); tasks fork from those workers, and the listener
checks that the task is no fork of a service. Started as root (`make up` on a server, the test suite), the
task process then becomes the task user (`BENEFITFLOW_TASK_USER`; `system_users.py`) before it parses its
DAG file, and no program it starts gains privileges: it cannot read `airflow.cfg`, `.local/secrets.json` or
any service's process, nor write the code the services run. If anything fails, the task process exits
rather than run. What still holds: started as an ordinary user, services and tasks are that user, so a task
could read `airflow.cfg`; and freed memory is not wiped (README, "Secrets").
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from airflow.listeners import hookimpl

from benefitflow.platform import system_users

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
# Imported by the scheduler and the triggerer, never by a task or an executor worker.
SERVICE_MODULES = ("airflow.jobs.scheduler_job_runner", "airflow.jobs.triggerer_job_runner")

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
    forget_celery_settings()
    log.info("This task process has forgotten the services' secrets: %s",
             ", ".join(f"{section}.{key}" for section, key in replacements))


# A Celery worker's task is a fork of one of its slots, which hold the worker's Celery settings: the broker's and the
# result backend's URLs (Redis', with its password; in a deployment that keeps results in a database, its login).
CELERY_SETTINGS = (("airflow.providers.celery.executors.default_celery", "DEFAULT_CELERY_CONFIG"),
                   ("benefitflow.platform.celery_config", "CELERY_CONFIG"))
CELERY_APP_MODULE = "airflow.providers.celery.executors.celery_executor_utils"
CELERY_SECRET_KEYS = tuple(key for section, key in SERVICE_SECRETS if section == "celery")


def forget_celery_settings() -> None:
    """The broker's and result backend's URLs out of the Celery settings a worker's task inherited. Objects Celery
    made from them before the fork (its connections, the result backend's engine) are not reached here, and freed
    memory is not wiped (README, "Secrets")."""
    for module_name, attribute in CELERY_SETTINGS:
        settings = getattr(sys.modules.get(module_name), attribute, None)
        if isinstance(settings, dict):
            settings.update({key: "" for key in CELERY_SECRET_KEYS if key in settings})
    app = getattr(sys.modules.get(CELERY_APP_MODULE), "app", None)
    if app is not None and getattr(app, "configured", False):
        for key in CELERY_SECRET_KEYS:
            app.conf[key] = ""


def inherited_service_state() -> tuple[list[str], int]:
    """The Airflow services this process is a fork of, told by their modules (a task forked from the scheduler
    has its executor, whose token signer holds the JWT secret once used, and its database session); and how
    many SQLAlchemy sessions are alive in it (any is a parent's: a task opens none)."""
    services = sorted(module for module in SERVICE_MODULES if module in sys.modules)
    session_module = sys.modules.get("sqlalchemy.orm.session")
    return services, len(session_module._sessions) if session_module is not None else 0


def check_nothing_inherited() -> None:
    services, sessions = inherited_service_state()
    if services:  # no task runs with a copy of a service's memory
        raise RuntimeError(f"this task process is a fork of an Airflow service ({', '.join(services)}): start the "
                           "scheduler's executor workers afresh ([scheduler] mp_start_method = forkserver)")
    if sessions:
        log.warning("This task process still holds %d database session(s) of the process it was forked from",
                    sessions)
    else:
        log.info("This task process holds no session, executor or token signer of Airflow's services")


def become_task_user() -> None:
    """Started as root, become the task user for good; otherwise stay the services' user. Either way no program
    started from here gains privileges."""
    name = os.environ.get(system_users.TASK_USER_VARIABLE)
    if not (name and system_users.running_as_root()):
        system_users.forbid_new_privileges()
        log.info("This task process runs as uid %d, the services' own user", os.getuid())
        return
    shed = system_users.shed_inherited_files()
    user = system_users.become(name)
    home = tempfile.mkdtemp(prefix="benefitflow-task-home-")  # root's home is not the task user's
    atexit.register(shutil.rmtree, home, True)
    os.environ.update(HOME=home, USER=name, LOGNAME=name)
    log.info("This task process runs as the task user %s (uid %d), holding none of the %d pipes and files it "
             "inherited; no program it starts gains privileges", name, user.pw_uid, shed)


@hookimpl
def on_starting(component: Any) -> None:
    task_runner = sys.modules.get(TASK_RUNNER)
    if task_runner is None or not isinstance(component, task_runner.TaskRunnerMarker):
        return
    try:
        forget_service_secrets()
        check_nothing_inherited()
        become_task_user()
    except BaseException:  # the task runner only logs a listener's error: a task must not run with the secrets
        log.exception("This task process could not shed the services' secrets and user; it stops here")
        logging.shutdown()
        os._exit(1)
