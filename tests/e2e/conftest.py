from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from benefitflow_dev import services, superset_setup
from benefitflow_dev.airflow_client import AirflowClient

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"  # one DAG per file (tests/integration/test_dags.py)


def pytest_collection_modifyitems(config, items) -> None:
    """The fault tests crash the database the other tests use: only a session that asks for them runs them."""
    if "faults" not in (config.option.markexpr or ""):
        kept = [item for item in items if item.get_closest_marker("faults") is None]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def airflow(airflow_services):
    """Log-in factory for the running Airflow; waits until the workflow DAGs are registered."""

    def login(username: str) -> AirflowClient:
        return AirflowClient(airflow_services.airflow_url, username, airflow_services.user_password(username))

    login("admin").wait_for_dags(len(list(DAGS_DIR.glob("*.py"))))
    return login


def _prepare_superset_twice(instance):
    superset_setup.prepare(instance)
    superset_setup.prepare(instance)  # a second `make up` must not duplicate anything
    return instance


@pytest.fixture(scope="session", autouse=True)
def superset_preparing(request, airflow_services) -> Iterator[Future | None]:
    """Superset's metadata database, roles, users and asset bundle, made once for every test module.

    About a minute of work that needs nothing of Airflow: it starts once Airflow is up and runs beside
    the first workflow tests (`make up` does the same beside the demo runs). Not for the faults tier, which crashes
    the database it would be writing to and needs no Superset.
    """
    if request.config.option.markexpr == "faults":
        yield None
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        preparing = pool.submit(_prepare_superset_twice, airflow_services)
        yield preparing
    if preparing.exception() is not None:  # also when no test of this session asked for Superset
        raise preparing.exception()


@pytest.fixture(scope="session")
def superset_prepared(superset_preparing):
    return superset_preparing.result()


@pytest.fixture(scope="module")
def superset(superset_prepared):
    """Superset's web server, a fresh process per test module (a few seconds to start).

    Superset keeps chart data in a per-process cache for minutes: a server shared across modules would
    answer one module's queries with numbers cached by another module before it added its data.
    """
    superset_setup.start(superset_prepared)
    yield superset_prepared
    for service in services.superset_services(superset_prepared):
        services.stop(superset_prepared, service.name)
