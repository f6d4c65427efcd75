"""DAG integrity: everything parses, and every workflow reads the same way."""

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from benefitflow.approval import MakerCheckerApproval

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(list(DAGS_DIR.glob("*.py")))


def test_every_dag_has_tags_owner_and_doc(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        assert all(task.owner == "benefitflow" for task in dag.tasks), dag_id


UPLOAD_DAGS = ["platform_selftest", "individuals_import", "grievances_import"]
REQUEST_DAGS = ["benefit_plan_define", "benefit_plan_close", "enrolment", "beneficiary_status", "payment_cycle",
                "payroll", "held_bills_release", "grievance_status"]
PAYMENT_DAGS = ["payment_cycle", "payroll", "payroll_reconciliation", "held_bills_release"]
GRIEVANCE_DAGS = ["grievances_import", "grievance_status"]
WORKFLOW_DAGS = UPLOAD_DAGS + REQUEST_DAGS


@pytest.mark.parametrize("dag_id", WORKFLOW_DAGS)
def test_workflows_have_the_six_steps_in_order(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    approve = dag.get_task("approve")
    assert isinstance(approve, MakerCheckerApproval)
    assert approve.defaults == ["Reject"]  # a timeout never approves
    assert approve.retries >= 1  # survives Airflow's resume race without losing the answer
    assert dag.get_task("intake").downstream_task_ids == {"validate", "propose", "commit"}
    assert dag.get_task("propose").downstream_task_ids == {"approve"}
    assert approve.downstream_task_ids == {"commit"}
    publish = [t for t in dag.task_ids if t.startswith("publish.")]
    rebuilt = ("publish.bills_run" if dag_id in PAYMENT_DAGS else
               "publish.grievances_run" if dag_id in GRIEVANCE_DAGS else
               "publish.individuals_run" if dag_id in UPLOAD_DAGS else "publish.beneficiaries_run")
    assert "publish.mart_approvals_run" in publish and rebuilt in publish
    assert dag.get_task("published").outlets


def test_a_policy_of_two_distinct_checkers_asks_twice_before_the_commit(dagbag: DagBag) -> None:
    dag = dagbag.dags["platform_selftest_two_checkers"]
    first, last = dag.get_task("approve_1"), dag.get_task("approve")
    assert isinstance(first, MakerCheckerApproval) and isinstance(last, MakerCheckerApproval)
    assert (first.step, first.needed, first.decides) == (1, 2, False)
    assert (last.step, last.needed, last.decides) == (2, 2, True)
    assert dag.get_task("propose").downstream_task_ids == {"approve_1"}
    assert first.downstream_task_ids == {"approve"} and last.downstream_task_ids == {"commit"}
    assert first.defaults == last.defaults == ["Reject"] and first.retries >= 1


@pytest.mark.parametrize("dag_id", UPLOAD_DAGS)
def test_trigger_form_validates_parameters(dagbag: DagBag, dag_id: str) -> None:
    params = dagbag.dags[dag_id].params
    assert params.get_param("on_invalid_rows").schema["enum"] == ["reject_file", "skip_invalid_rows"]
    assert params.get_param("file").schema["minLength"] == 1


def test_individuals_import_has_the_issue_parameters(dagbag: DagBag) -> None:
    params = dagbag.dags["individuals_import"].params
    assert set(params.keys()) == {"file", "mode", "on_invalid_rows"}
    assert params.get_param("mode").schema["enum"] == ["create", "update"]
    assert params["on_invalid_rows"] == "reject_file"


@pytest.mark.parametrize("dag_id", ["registry_export", "beneficiaries_export", "payments_export"])
def test_exports_take_a_filter_object_and_columns(dagbag: DagBag, dag_id: str) -> None:
    params = dagbag.dags[dag_id].params
    assert params.get_param("filter").schema["type"] == "object"
    assert params.get_param("columns").schema["type"] == "array"


@pytest.mark.parametrize(("dag_id", "parameters"), [
    ("benefit_plan_define", {"plan", "file"}),
    ("benefit_plan_close", {"plan", "reason"}),
    ("enrolment", {"plan", "target_status", "criteria"}),
    ("beneficiary_status", {"plan", "status", "reason", "criteria", "file"}),
    ("payment_cycle", {"plan", "cycle", "period_start", "period_end"}),
    ("payroll", {"cycle", "plan", "payment_point", "criteria", "include_unpaid_from"}),
    ("held_bills_release", {"plan", "cycle", "bills", "reason"}),
    ("grievance_status", {"grievances", "status", "comment"}),
    ("individual_record_export", {"individual_id"}),
])
def test_programme_workflows_have_the_issue_parameters(dagbag: DagBag, dag_id: str, parameters: set[str]) -> None:
    params = dagbag.dags[dag_id].params
    assert set(params.keys()) == parameters
    if "criteria" in parameters:
        assert params.get_param("criteria").schema["type"] == "object"


def test_enrolment_targets_potential_or_active(dagbag: DagBag) -> None:
    assert dagbag.dags["enrolment"].params.get_param("target_status").schema["enum"] == ["POTENTIAL", "ACTIVE"]
