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


def test_workflows_have_the_six_steps_in_order(dagbag: DagBag) -> None:
    dag = dagbag.dags["platform_selftest"]
    approve = dag.get_task("approve")
    assert isinstance(approve, MakerCheckerApproval)
    assert approve.defaults == ["Reject"]  # a timeout never approves
    assert approve.retries >= 1  # survives Airflow's resume race without losing the answer
    assert dag.get_task("intake").downstream_task_ids == {"validate", "propose", "commit"}
    assert dag.get_task("propose").downstream_task_ids == {"approve"}
    assert approve.downstream_task_ids == {"commit"}
    publish = [t for t in dag.task_ids if t.startswith("publish.")]
    assert "publish.mart_approvals_run" in publish
    assert dag.get_task("published").outlets


def test_trigger_form_validates_parameters(dagbag: DagBag) -> None:
    params = dagbag.dags["platform_selftest"].params
    assert params.get_param("on_invalid_rows").schema["enum"] == ["reject_file", "skip_invalid_rows"]
    assert params.get_param("file").schema["minLength"] == 1
