"""A task process keeps none of the secrets only Airflow's services need (platform/task_secrets.py).

Each case runs in a fresh interpreter configured like a service (secrets in airflow.cfg and, for the
old way, in the environment), because forgetting them is meant to be irreversible for its process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benefitflow.platform.instance import PROJECT_ROOT

SECRETS = {
    ("core", "fernet_key"): "fernet-in-the-config-file",
    ("api", "secret_key"): "api-key-in-the-config-file",
    ("api_auth", "jwt_secret"): "jwt-in-the-config-file",
    ("database", "sql_alchemy_conn"): "postgresql+psycopg2://airflow:owner-password@127.0.0.1:1/airflow",
    ("celery", "result_backend"): "db+postgresql://airflow:owner-password@127.0.0.1:1/airflow",
}

PROBE = """
import json, os, sys
from airflow.configuration import conf
from airflow.sdk.configuration import conf as sdk_conf
from benefitflow.platform import task_secrets

def seen():
    names = [(s, k) for s, k in json.loads(sys.argv[1])]
    return {
        "core": {f"{s}.{k}": conf.get(s, k, fallback=None) for s, k in names},
        "sdk": {f"{s}.{k}": sdk_conf.get(s, k, fallback=None) for s, k in names},
        "environment": sorted(n for n in os.environ if n.startswith("AIRFLOW__") and
                              any(k.upper() in n for _, k in names)),
    }

before = seen()
task_secrets.on_starting(component=type(sys.argv[2], (), {})())
print(json.dumps({"before": before, "after": seen()}))
"""


def run_probe(tmp_path: Path, component: str, environment: dict[str, str]) -> dict:
    config = tmp_path / "airflow.cfg"
    sections: dict[str, list[str]] = {}
    for (section, key), value in SECRETS.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    config.write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items()))
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env |= {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONFIG": str(config),
            "PYTHONPATH": str(PROJECT_ROOT / "plugins"), **environment}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(SECRETS)), component],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("old_way", [False, True], ids=["secrets in airflow.cfg", "secrets also in the environment"])
def test_a_task_process_forgets_every_service_secret(tmp_path: Path, old_way: bool) -> None:
    environment = {"AIRFLOW__API_AUTH__JWT_SECRET": "jwt-in-the-environment",
                   "AIRFLOW__CORE__FERNET_KEY_CMD": "echo fernet-from-a-command"} if old_way else {}
    seen = run_probe(tmp_path, "TaskRunnerMarker", environment)
    assert seen["before"]["core"]["core.fernet_key"].strip() == (
        "fernet-from-a-command" if old_way else "fernet-in-the-config-file")
    assert seen["before"]["sdk"]["api_auth.jwt_secret"] == (
        "jwt-in-the-environment" if old_way else "jwt-in-the-config-file")
    for parser in ("core", "sdk"):
        after = seen["after"][parser]
        assert after["database.sql_alchemy_conn"] == "airflow-db-not-allowed:///"
        assert {after[name] for name in after if name != "database.sql_alchemy_conn"} == {""}
    assert seen["after"]["environment"] == []


def test_other_components_keep_their_secrets(tmp_path: Path) -> None:
    seen = run_probe(tmp_path, "SchedulerJobRunner", {})
    assert seen["after"] == seen["before"]
    assert seen["after"]["core"]["api_auth.jwt_secret"] == "jwt-in-the-config-file"
