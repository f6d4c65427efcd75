"""A task process keeps none of the secrets only Airflow's services need (platform/task_secrets.py).

Each case runs in a fresh interpreter configured like a service (secrets in airflow.cfg and, the old way,
in the environment), because forgetting them is meant to be irreversible for its process. This checks the
configuration, the environment and the cached Fernet key; what a forked task still inherits from the
scheduler's memory is not covered (see the module's docstring).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from benefitflow.platform import system_users
from benefitflow_dev.instance import PROJECT_ROOT
from tests.unit.task_process import run_like_a_task

SECRETS = {
    ("core", "fernet_key"): Fernet.generate_key().decode(),
    ("api", "secret_key"): "api-key-in-the-config-file",
    ("api_auth", "jwt_secret"): "jwt-in-the-config-file",
    ("database", "sql_alchemy_conn"): "postgresql+psycopg2://airflow:owner-password@127.0.0.1:1/airflow",
    ("celery", "result_backend"): "db+postgresql://airflow:owner-password@127.0.0.1:1/airflow",
}

PROBE = """
import json, os, sys
from airflow.configuration import conf
from airflow.models.crypto import get_fernet
from airflow.sdk.configuration import conf as sdk_conf
from airflow.sdk.execution_time.supervisor import block_orm_access
from airflow.sdk.execution_time.task_runner import TaskRunnerMarker
from benefitflow.platform import task_secrets

def seen():
    names = [(s, k) for s, k in json.loads(sys.argv[1])]
    return {
        "core": {f"{s}.{k}": conf.get(s, k, fallback=None) for s, k in names},
        "sdk": {f"{s}.{k}": sdk_conf.get(s, k, fallback=None) for s, k in names},
        "environment": sorted(n for n in os.environ if n.startswith("AIRFLOW__") and
                              any(k.upper() in n for _, k in names)),
        "fernet encrypts": get_fernet().is_encrypted,
        "user": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
        "reads airflow.cfg": reads(os.environ["AIRFLOW_CONFIG"]),
    }

def reads(path):
    try:
        with open(path) as handle:
            return bool(handle.read())
    except PermissionError:
        return False

before = seen()
if sys.argv[2] != "scheduler":
    block_orm_access()  # as the supervisor's fork does before the task runner starts
if sys.argv[2] == "holding a session":
    import sqlalchemy, sqlalchemy.orm
    kept = sqlalchemy.orm.Session(sqlalchemy.create_engine("postgresql+psycopg2://airflow:pw@127.0.0.1:1/airflow"))
if sys.argv[2] == "forked from the scheduler":
    import airflow.jobs.scheduler_job_runner
if sys.argv[2] == "failing":
    task_secrets.forget_service_secrets = lambda: 1 / 0
task_secrets.on_starting(component=TaskRunnerMarker() if sys.argv[2] != "scheduler" else object())
print("listener done")
print(next(line for line in open("/proc/self/status") if line.startswith("NoNewPrivs")).strip())
print(json.dumps({"before": before, "after": seen()}))
"""


def run_probe(tmp_path: Path, component: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    config = tmp_path / "airflow.cfg"
    sections: dict[str, list[str]] = {}
    for (section, key), value in SECRETS.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    config.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    config.chmod(0o600)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AIRFLOW") and key != system_users.TASK_USER_VARIABLE}
    env |= {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONFIG": str(config),
            "PYTHONPATH": str(PROJECT_ROOT / "plugins"), **environment}
    return run_like_a_task(PROBE, json.dumps(list(SECRETS)), component, env=env)


def seen(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def said(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


@pytest.mark.parametrize("old_way", [False, True], ids=["secrets in airflow.cfg", "also in the environment"])
def test_a_task_process_forgets_every_service_secret(tmp_path: Path, old_way: bool) -> None:
    environment = {"AIRFLOW__API_AUTH__JWT_SECRET": "jwt-in-the-environment",
                   "AIRFLOW__WEBSERVER__SECRET_KEY": "api-key-under-its-old-name",
                   "AIRFLOW__CORE__FERNET_KEY_CMD": f"echo {Fernet.generate_key().decode()}"} if old_way else {}
    probe = run_probe(tmp_path, "task", environment)
    assert "holds no session, executor or token signer" in said(probe)
    result = seen(probe)
    before, after = result["before"], result["after"]
    assert before["fernet encrypts"] and before["sdk"]["api_auth.jwt_secret"] == (
        "jwt-in-the-environment" if old_way else "jwt-in-the-config-file")
    assert before["core"]["api.secret_key"] == ("api-key-under-its-old-name" if old_way else "api-key-in-the-config-file")
    for parser in ("core", "sdk"):
        assert after[parser].pop("database.sql_alchemy_conn") == "airflow-db-not-allowed:///"
        assert set(after[parser].values()) == {""}
    assert after["environment"] == [] and not after["fernet encrypts"]


def test_other_components_keep_their_secrets(tmp_path: Path) -> None:
    result = seen(run_probe(tmp_path, "scheduler", {}))
    assert result["after"] == result["before"]
    assert result["after"]["core"]["api_auth.jwt_secret"] == "jwt-in-the-config-file"


def test_a_task_process_that_cannot_forget_them_stops(tmp_path: Path) -> None:
    result = run_probe(tmp_path, "failing", {})
    assert result.returncode == 1
    assert "could not shed the services' secrets and user" in said(result)
    assert "listener done" not in result.stdout


def test_a_task_process_forked_from_the_scheduler_stops(tmp_path: Path) -> None:
    result = run_probe(tmp_path, "forked from the scheduler", {})
    assert result.returncode == 1
    assert "is a fork of an Airflow service (airflow.jobs.scheduler_job_runner)" in said(result)
    assert "listener done" not in result.stdout


def test_a_database_session_left_in_a_task_process_is_reported(tmp_path: Path) -> None:
    result = run_probe(tmp_path, "holding a session", {})
    assert "still holds 1 database session(s)" in said(result)
    assert "listener done" in result.stdout


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root can become another user")


@root_only
def test_a_task_process_started_as_root_becomes_the_task_user(tmp_path: Path) -> None:
    task_user = system_users.prepare_task_user(PROJECT_ROOT)
    tmp_path.chmod(0o755)  # the probe's own configuration stays 0600, the services'
    probe = run_probe(tmp_path, "task", {system_users.TASK_USER_VARIABLE: task_user.pw_name})
    assert f"runs as the task user {task_user.pw_name} (uid {task_user.pw_uid})" in said(probe)
    before, after = seen(probe)["before"], seen(probe)["after"]
    assert before["user"][:3] == [0, 0, 0] and before["reads airflow.cfg"]
    assert after["user"] == [task_user.pw_uid, task_user.pw_uid, task_user.pw_gid, []]
    assert not after["reads airflow.cfg"]


@root_only
def test_a_task_process_that_cannot_become_the_task_user_stops(tmp_path: Path) -> None:
    result = run_probe(tmp_path, "task", {system_users.TASK_USER_VARIABLE: "no-such-benefitflow-user"})
    assert result.returncode == 1
    assert "could not shed the services' secrets and user" in said(result)
    assert "listener done" not in result.stdout


def test_without_a_task_user_a_task_process_stays_the_services_user(tmp_path: Path) -> None:
    probe = run_probe(tmp_path, "task", {})
    assert f"runs as uid {os.getuid()}, the services' own user" in said(probe)
    result = seen(probe)
    assert result["after"]["user"] == result["before"]["user"]


def test_no_program_a_task_process_starts_gains_privileges(tmp_path: Path) -> None:
    probe = run_probe(tmp_path, "task", {})
    assert "listener done" in probe.stdout
    no_new_privileges = [line for line in probe.stdout.splitlines() if line.startswith("NoNewPrivs")]
    assert no_new_privileges == ["NoNewPrivs:\t1"]


def test_a_celery_workers_task_forgets_the_broker_and_result_backend_in_the_settings_it_inherited(monkeypatch) -> None:
    import types

    from benefitflow.platform import task_secrets

    inherited = {"broker_url": "redis://:secret@127.0.0.1:1/0", "result_backend": "db+postgresql://airflow:pw@x/a",
                 "worker_prefetch_multiplier": 1}
    ours = dict(inherited)
    conf = dict(inherited)
    app = types.SimpleNamespace(configured=True, conf=conf)
    monkeypatch.setitem(sys.modules, task_secrets.CELERY_SETTINGS[0][0],
                        types.SimpleNamespace(DEFAULT_CELERY_CONFIG=inherited))
    monkeypatch.setitem(sys.modules, task_secrets.CELERY_SETTINGS[1][0], types.SimpleNamespace(CELERY_CONFIG=ours))
    monkeypatch.setitem(sys.modules, task_secrets.CELERY_APP_MODULE, types.SimpleNamespace(app=app))
    task_secrets.forget_celery_settings()
    for settings in (inherited, ours, conf):
        assert settings == {"broker_url": "", "result_backend": "", "worker_prefetch_multiplier": 1}
