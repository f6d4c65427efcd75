import pytest

from benefitflow.platform.airflow_client import AirflowClient

DAG_IDS = ("platform_selftest", "individuals_import", "registry_export", "benefit_plan_define", "enrolment",
           "beneficiary_status", "benefit_plan_close", "beneficiaries_import", "beneficiaries_export", "payment_cycle",
           "held_bills_release", "payroll", "payroll_reconciliation", "payments_export")


@pytest.fixture(scope="session")
def airflow(airflow_services):
    """Log-in factory for the running Airflow; waits until the workflow DAGs are registered."""

    def login(username: str) -> AirflowClient:
        return AirflowClient(airflow_services.airflow_url, username, airflow_services.user_password(username))

    for dag_id in DAG_IDS:
        login("admin").wait_for_dag(dag_id)
    return login
