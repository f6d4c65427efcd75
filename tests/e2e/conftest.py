import time

import pytest

from tests.e2e.airflow_client import AirflowClient

DAG_ID = "platform_selftest"


@pytest.fixture(scope="session")
def airflow(airflow_services):
    """Log-in factory for the running Airflow; waits until the workflow DAGs are registered."""

    def login(username: str) -> AirflowClient:
        return AirflowClient(airflow_services.airflow_url, username, airflow_services.user_password(username))

    admin = login("admin")
    deadline = time.monotonic() + 180
    while admin.request("GET", f"/dags/{DAG_ID}").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{DAG_ID} was not registered by the dag-processor")
        time.sleep(1)
    return login
