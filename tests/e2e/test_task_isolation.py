"""No Airflow service secret is in any process's environment, and every task process drops what it inherited in
its configuration and holds nothing of the scheduler's memory (security review M8; README, "Secrets")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benefitflow.platform import system_users
from benefitflow_dev import services, stack

pytestmark = [pytest.mark.e2e, pytest.mark.celery]

DAG_ID = "platform_selftest"


def service_secrets(instance) -> dict[str, str]:
    return {"Fernet key": instance.secrets["fernet_key"], "JWT secret": instance.secrets["jwt_secret"],
            "API secret key": instance.secrets["api_secret_key"],
            "metadata database owner's password": instance.secrets["db_airflow"]}


def environments() -> dict[int, bytes]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile; another user's; or, unless root, a non-dumpable fork of the scheduler
                continue
    return found


def test_no_process_has_an_airflow_service_secret_in_its_environment(airflow_services) -> None:
    environments_now = environments()
    # Every task process forks from the scheduler (LocalExecutor); the api-server's retitling blanks its block.
    scheduler = services.pid_of(airflow_services, "airflow-scheduler")
    assert f"AIRFLOW_CONFIG={airflow_services.airflow_config}".encode() in environments_now[scheduler]
    for what, secret in service_secrets(airflow_services).items():
        holders = [pid for pid, environment in environments_now.items() if secret.encode() in environment]
        assert holders == [], f"the {what} is in the environment of processes {holders}"



def test_every_task_process_runs_the_listener_that_drops_the_inherited_secrets(airflow, airflow_services,
                                                                                 inbox_file) -> None:
    maker = airflow("maker")
    name = inbox_file("isolation.csv", "code,label,amount\nBAD CODE,,-5\n").name
    run_id = maker.trigger(DAG_ID, {"file": name}).json()["dag_run_id"]
    assert maker.wait_for_run(DAG_ID, run_id) == "failed"
    response = airflow("admin").request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/intake/logs/1",
                                        params={"full_content": "true"})
    assert response.status_code == 200, response.text
    assert "has forgotten the services' secrets: core.fernet_key, api.secret_key, api_auth.jwt_secret" in response.text
    assert "holds no session, executor or token signer of Airflow's services" in response.text
    if os.geteuid() == 0:  # the services run as root: the task ran as the task user, and archived the file as it
        assert f"runs as the task user {system_users.TASK_USER}" in response.text
        assert "holding none of the" in response.text and "pipes and files it inherited" in response.text
        archived = [path for path in airflow_services.outbox.rglob(f"*-{name}")]
        assert archived and {path.owner() for path in archived} == {system_users.TASK_USER}, archived



def test_the_local_files_are_the_owners_alone_and_name_no_airflow_secret(airflow_services) -> None:
    stack.write_local_files(airflow_services)
    home = airflow_services.home
    local_files = [home / name for name in ("secrets.json", "credentials.json", "env", "airflow.env")]
    for path in [*local_files, airflow_services.airflow_config]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert home.stat().st_mode & 0o777 == 0o711  # passed through (PostgreSQL's user, the task user), not listed
    sourced = (home / "airflow.env").read_text()
    assert f"AIRFLOW_CONFIG='{airflow_services.airflow_config}'" in sourced
    for what, secret in service_secrets(airflow_services).items():
        assert secret not in sourced, what


def test_nothing_the_platform_wrote_to_the_outbox_is_readable_by_others(airflow_services) -> None:
    """Runs after this module's workflow run (an archived upload and its error report), and after the
    other end-to-end modules when the whole tier runs."""
    written = [path for path in airflow_services.outbox.rglob("*") if path.is_file()]
    assert written
    loose = {str(path): oct(path.stat().st_mode & 0o777) for path in written if path.stat().st_mode & 0o137}
    assert loose == {}
