"""The registry API service as `make up` starts it: its own environment names everything the service reads (the
test suite's processes carry Airflow's whole environment, so a variable missing here would pass the other tiers
and fail `make up`)."""

from __future__ import annotations

from pathlib import Path

from benefitflow.registry_api import app, clients, signing
from benefitflow_dev import services
from benefitflow_dev.instance import Instance


def test_the_service_is_given_its_database_secrets_and_key_and_listens_on_loopback(tmp_path: Path) -> None:
    instance = Instance.throwaway(tmp_path)
    service = services.registry_api_service(instance)
    assert {app.DATABASE_VARIABLE, clients.SECRETS_VARIABLE, signing.KEY_VARIABLE} <= set(service.env)
    assert service.env[signing.KEY_VARIABLE] == str(instance.registry_api_key)
    assert service.command[service.command.index("--host") + 1] == "127.0.0.1"
    assert "benefitflow_registry_api" in service.env[app.DATABASE_VARIABLE]
