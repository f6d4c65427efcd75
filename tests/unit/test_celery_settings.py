"""The settings `make up EXECUTOR=celery` gives Airflow, its broker and each worker (benefitflow_dev.instance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benefitflow.platform import workers
from benefitflow_dev import services
from benefitflow_dev.instance import Instance, chosen_executor, chosen_worker_count


def an_installation(tmp_path: Path, executor: str) -> Instance:
    return Instance(home=tmp_path / "home", executor=executor, redis_port=40123, inbox=tmp_path / "inbox",
                    outbox=tmp_path / "outbox")


def test_the_executor_is_given_or_recorded_and_nothing_else_is_taken(tmp_path, monkeypatch) -> None:
    recorded = tmp_path / "executor"
    monkeypatch.delenv("BENEFITFLOW_EXECUTOR", raising=False)
    assert chosen_executor(recorded) == "local"
    recorded.write_text("celery\n")
    assert chosen_executor(recorded) == "celery"
    monkeypatch.setenv("BENEFITFLOW_EXECUTOR", "Local")
    assert chosen_executor(recorded) == "local"
    monkeypatch.setenv("BENEFITFLOW_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="one of local, celery"):
        chosen_executor(recorded)
    monkeypatch.setenv("BENEFITFLOW_CELERY_WORKERS", "0")
    with pytest.raises(ValueError, match="1 or more"):
        chosen_worker_count()


def test_only_a_celery_installation_has_workers_a_broker_and_its_secrets(tmp_path) -> None:
    local, celery = an_installation(tmp_path / "l", "local"), an_installation(tmp_path / "c", "celery")
    assert local.airflow_env()["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert local.worker_names == [] and services.celery_services(local) == []
    assert ("celery", "broker_url") not in local.airflow_service_secrets()

    assert celery.airflow_env()["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert celery.worker_names == ["worker-1", "worker-2"]
    secrets = celery.airflow_service_secrets()
    assert secrets[("celery", "broker_url")] == f"redis://:{celery.secrets['redis_password']}@127.0.0.1:40123/0"
    assert secrets[("celery", "result_backend")].startswith("db+postgresql://airflow:")
    # The broker's password and the result backend's are in airflow.cfg only, never in an environment.
    for name in celery.worker_names:
        assert not any(celery.secrets["redis_password"] in value for value in celery.worker_env(name).values())


def test_each_worker_has_its_own_folders_and_name_and_shares_the_file_store_and_logs(tmp_path) -> None:
    celery = an_installation(tmp_path, "celery")
    first, second = (celery.worker_env(name) for name in celery.worker_names)
    for key in ("AIRFLOW_HOME", "TMPDIR", "BENEFITFLOW_DBT_TARGET", workers.WORKER_NAME_VARIABLE):
        assert first[key] != second[key], key
    for key in ("BENEFITFLOW_INBOX", "BENEFITFLOW_OUTBOX", "AIRFLOW__LOGGING__BASE_LOG_FOLDER", "AIRFLOW_CONFIG",
                "BENEFITFLOW_DATABASE_URL"):
        assert first[key] == second[key], key
    service = services.celery_worker_service(celery, "worker-2")
    assert service.cwd == celery.worker_home("worker-2")
    assert service.command[-3:] == ["--queues", "default,worker-2", "--skip-serve-logs"]


def test_a_worker_records_its_own_name_as_the_host_of_its_tasks(monkeypatch) -> None:
    monkeypatch.setenv(workers.WORKER_NAME_VARIABLE, "worker-2")
    assert workers.hostname() == "worker-2"
    monkeypatch.delenv(workers.WORKER_NAME_VARIABLE)
    assert workers.hostname()  # the machine's name, as Airflow records it by default
