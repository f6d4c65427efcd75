"""The test stack: a throwaway PostgreSQL (and, for e2e tests, Airflow services) on free ports.

Everything runs for real; the stack is made once per session in a temporary folder and
removed afterwards. Set BENEFITFLOW_KEEP_TEST_STACK=1 to keep the folder for a look.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benefitflow_dev import services, stack
from benefitflow_dev.instance import Instance, free_port

_INSTANCE: Instance | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Create the instance and export its settings before anything imports Airflow or reads config."""
    global _INSTANCE
    home = Path(tempfile.mkdtemp(prefix="benefitflow-test-", dir="/tmp"))
    home.chmod(0o755)  # the PostgreSQL server user must reach its data folder
    _INSTANCE = Instance.throwaway(home)
    _INSTANCE.write_airflow_config()
    os.environ.update(_INSTANCE.airflow_env())
    _registry_api_test_clients(home)
    # A CI timeout or Ctrl-C sends SIGTERM: exit through pytest so the services are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


# The partner systems' clients the tests use besides the shipped ones (every service of the session reads them).
CALLBACK_PORT_VARIABLE = "BENEFITFLOW_TEST_CALLBACK_PORT"
PARTNER_KEY_VARIABLE = "BENEFITFLOW_TEST_PARTNER_KEY"


def _registry_api_test_clients(home: Path) -> None:
    import base64

    import yaml
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from benefitflow.registry_api import clients

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    port = free_port()
    document = yaml.safe_load(clients.CLIENTS_FILE.read_text())
    attributes_one = {"record_types": ["Member"], "attributes": ["first_name"], "query_types": ["idtype-value"]}
    document["clients"] |= {
        "signed-partner": {**attributes_one, "public_key": base64.b64encode(public).decode(),
                           "require_signed_requests": True},
        "hasty-partner": {**attributes_one, "requests_per_minute": 3},
        "callback-partner": {"record_types": ["Member", "Group"], "attributes": ["first_name", "last_name", "dob", "national_id"],
                             "query_types": ["idtype-value", "predicate"], "callback_url": f"http://127.0.0.1:{port}/dci"},
    }
    path = home / "registry-api-test-clients.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    os.environ[clients.CLIENTS_VARIABLE] = str(path)
    os.environ[CALLBACK_PORT_VARIABLE] = str(port)
    os.environ[PARTNER_KEY_VARIABLE] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker (its folder): `pytest -m integration` and the like."""
    for item in items:
        tier = Path(str(item.path)).relative_to(Path(__file__).parent).parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(tier)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _INSTANCE is None:
        return
    stack.stop_all(_INSTANCE)
    if not os.environ.get("BENEFITFLOW_KEEP_TEST_STACK"):
        shutil.rmtree(_INSTANCE.home, ignore_errors=True)


@pytest.fixture(scope="session")
def instance() -> Instance:
    assert _INSTANCE is not None
    return _INSTANCE


@pytest.fixture(scope="session")
def database(instance: Instance) -> Instance:
    """PostgreSQL with the platform's schemas, users and every dbt model built once."""
    stack.prepare_file_store(instance)
    stack.prepare_database(instance)
    stack.build_dbt(instance)
    return instance


@pytest.fixture(scope="session")
def airflow_services(database: Instance) -> Iterator[Instance]:
    stack.prepare_airflow(database)
    stack.start_airflow(database)
    yield database
    for service in [*services.airflow_services(database), *services.celery_services(database)]:
        services.stop(database, service.name)


@pytest.fixture(scope="session")
def registry_api(database: Instance) -> Iterator[Instance]:
    """The partner systems' registry API service, on the test database."""
    stack.start_registry_api(database)
    yield database
    services.stop(database, services.registry_api_service(database).name)


@pytest.fixture
def inbox_file(database: Instance):
    """Write a file into the test inbox; returns its path."""
    def write(name: str, content: str | bytes) -> Path:
        path = database.inbox / f"{uuid.uuid4().hex[:10]}-{name}"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    return write
