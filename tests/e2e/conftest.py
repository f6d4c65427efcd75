import pytest

from benefitflow.platform import services, superset_setup
from benefitflow.platform.airflow_client import AirflowClient

DAG_IDS = ("platform_selftest", "platform_selftest_two_checkers", "individuals_import", "registry_export", "benefit_plan_define", "enrolment",
           "beneficiary_status", "benefit_plan_close", "beneficiaries_import", "beneficiaries_export", "payment_cycle",
           "held_bills_release", "payroll", "payroll_reconciliation", "payments_export", "grievances_import",
           "grievance_status", "individual_record_export")


@pytest.fixture(scope="session")
def airflow(airflow_services):
    """Log-in factory for the running Airflow; waits until the workflow DAGs are registered."""

    def login(username: str) -> AirflowClient:
        return AirflowClient(airflow_services.airflow_url, username, airflow_services.user_password(username))

    for dag_id in DAG_IDS:
        login("admin").wait_for_dag(dag_id)
    return login


@pytest.fixture(scope="session")
def superset_prepared(database):
    """Superset's metadata database, roles, users and asset bundle: made once for every test module."""
    superset_setup.prepare(database)
    superset_setup.prepare(database)  # a second `make up` must not duplicate anything
    return database


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
