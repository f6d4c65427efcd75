"""The settings `make up EXECUTOR=celery` gives Airflow, its broker and each worker (benefitflow_dev.instance)."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

from benefitflow.platform import workers
from benefitflow_dev import services
from benefitflow_dev import workers as benefitflow_workers
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
    password = celery.secrets["redis_password"]
    assert secrets[("celery", "broker_url")] == f"redis://airflow:{password}@127.0.0.1:40123/0"
    # Not the metadata database: a worker (and so a task, its fork) needs no login to it.
    assert secrets[("celery", "result_backend")] == f"redis://airflow:{password}@127.0.0.1:40123/1"
    # The broker's password and the result backend's are in airflow.cfg only, never in an environment.
    for name in celery.worker_names:
        assert not any(celery.secrets["redis_password"] in value for value in celery.worker_env(name).values())


def test_each_worker_has_its_own_folders_and_name_and_shares_the_file_store_and_logs(tmp_path) -> None:
    celery = an_installation(tmp_path, "celery")
    first, second = (celery.worker_env(name) for name in celery.worker_names)
    for key in ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "TMPDIR", "BENEFITFLOW_DBT_TARGET", workers.WORKER_NAME_VARIABLE):
        assert first[key] != second[key], key
    for key in ("BENEFITFLOW_INBOX", "BENEFITFLOW_OUTBOX", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
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


def test_a_workers_configuration_holds_the_brokers_login_and_no_secret_of_airflows_services(tmp_path) -> None:
    celery = an_installation(tmp_path, "celery")
    celery.write_airflow_config()
    services_config = celery.airflow_config.read_text()
    for name in celery.worker_names:
        path = celery.worker_config(name)
        assert celery.worker_env(name)["AIRFLOW_CONFIG"] == str(path)
        assert path.stat().st_mode & 0o777 == 0o600
        settings = configparser.ConfigParser(interpolation=None)
        settings.read(path)
        assert {(section, key) for section in settings.sections() for key in settings[section]} == {
            ("celery", "broker_url"), ("celery", "result_backend")}
        for secret in ("fernet_key", "jwt_secret", "api_secret_key", "db_airflow"):
            assert celery.secrets[secret] in services_config and celery.secrets[secret] not in path.read_text()


def test_redis_has_no_login_but_airflows_and_it_may_not_reconfigure_or_empty_redis(tmp_path) -> None:
    config = benefitflow_workers.redis_config(an_installation(tmp_path, "celery")).splitlines()
    assert "user default off" in config and not any(line.startswith("requirepass") for line in config)
    [login] = [line for line in config if line.startswith("user airflow ")]
    assert login.endswith("+@all -@admin -@dangerous")
    assert "bind 127.0.0.1" in config


def test_workers_left_running_by_an_earlier_up_are_found_by_their_pid_files(tmp_path) -> None:
    """`make up WORKERS=1` after two: worker-2 is still running, and `workers.start` stops it."""
    celery = an_installation(tmp_path, "celery")
    celery.run_dir.mkdir(parents=True)
    (celery.run_dir / "airflow-celery-worker-2.pid").write_text(f"{os.getpid()}\n")
    (celery.run_dir / "airflow-celery-worker-3.pid").write_text("999999999\n")  # gone: forgotten
    (celery.run_dir / "redis.pid").write_text(f"{os.getpid()}\n")
    assert benefitflow_workers.running_workers(celery) == ["worker-2"]
    assert not (celery.run_dir / "airflow-celery-worker-3.pid").exists()


def test_a_running_broker_or_worker_started_with_other_settings_is_restarted_with_these(tmp_path) -> None:
    """`make up` again after an upgrade: Redis and the workers take the new settings (a stand-in service here)."""
    celery = an_installation(tmp_path, "celery")
    settings = tmp_path / "settings.conf"
    settings.write_text("user airflow on\n")
    service = services.Service("stand-in", ["sleep", "60"], {}, cwd=tmp_path)
    prepared = []
    try:
        benefitflow_workers._start_as_configured(celery, service, settings, prepare=lambda: prepared.append(1))
        first = services.pid_of(celery, "stand-in")
        benefitflow_workers._start_as_configured(celery, service, settings, prepare=lambda: prepared.append(1))
        assert services.pid_of(celery, "stand-in") == first and prepared == [1]  # the same settings: left running
        settings.write_text("user default off\nuser airflow on\n")
        benefitflow_workers._start_as_configured(celery, service, settings, prepare=lambda: prepared.append(1))
        assert services.pid_of(celery, "stand-in") not in (None, first) and prepared == [1, 1]
    finally:
        services.stop(celery, "stand-in")
