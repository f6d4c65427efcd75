"""DAG integrity: everything parses, and every workflow reads the same way."""

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from benefitflow.core import dbt_runner
from benefitflow.workflows import catalogue, publish
from benefitflow.workflows.approve import MakerCheckerApproval, policy_for

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
# Parsed once at collection: the tests below are parametrised over what the DAG folder holds, not over a list.
DAGBAG = DagBag(dag_folder=str(DAGS_DIR))
# DAGs that change no programme data, so are no six-step workflow, and why.
SERVICE_DAGS = {"registry_api_search": "answers partner systems' asynchronous searches (reads the registry only)",
                "registry_api_notify": "notifies partner systems' subscriptions (reads the registry only)"}
ALL_DAGS = sorted(set(DAGBAG.dags) - set(SERVICE_DAGS))
WORKFLOW_DAGS = [dag_id for dag_id in ALL_DAGS if "commit" in DAGBAG.dags[dag_id].task_ids]
UPLOAD_DAGS = [dag_id for dag_id in WORKFLOW_DAGS if "on_invalid_rows" in DAGBAG.dags[dag_id].params]
EXPORT_DAGS = [dag_id for dag_id in ALL_DAGS if "filter" in DAGBAG.dags[dag_id].params]


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DAGBAG


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(SERVICE_DAGS) <= set(dagbag.dags)
    assert len(dagbag.dags) == len(list(DAGS_DIR.glob("*.py")))
    assert len(WORKFLOW_DAGS) >= 13 and len(UPLOAD_DAGS) >= 5 and len(EXPORT_DAGS) >= 3  # the lists are not empty


# Where the rule "operation = DAG id" does not hold, and why. Each entry must still be needed (the test below
# fails on one that is not): the list can only shrink.
OPERATIONS_KEPT = {  # operations the ledger, the audit trail and approval_groups.yaml already hold under these names
    "platform_selftest": "selftest",
    "platform_selftest_two_checkers": "selftest_two_checkers",
}


@pytest.fixture(scope="module")
def proposal_models(database) -> set[str]:
    """The dbt models tagged propose, as the installation's build (the database fixture) parsed them."""
    return {spec["name"] for spec in dbt_runner.manifest()["nodes"].values()
            if spec["resource_type"] == "model" and "propose" in spec["tags"]}


def test_every_declared_workflow_is_a_dag_and_every_dag_a_declared_workflow() -> None:
    assert sorted(catalogue.declared()) == ALL_DAGS


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_one_naming_rule(dagbag: DagBag, proposal_models: set[str], dag_id: str) -> None:
    """DAG id = the module declaring its WORKFLOW = its file in dags/, which only builds that WORKFLOW."""
    declared = catalogue.declared()[dag_id]
    assert declared.module.rsplit(".", 1)[1] == dag_id
    dag_file = Path(dagbag.dags[dag_id].fileloc)
    assert dag_file.name == f"{dag_id}.py"
    code = [line for line in dag_file.read_text().splitlines()[1:] if line.strip()]
    assert code == [f"from {declared.module} import WORKFLOW", "from benefitflow.workflows.dag import build_dag",
                    "dag = build_dag(WORKFLOW)"]
    workflow = declared.workflow
    assert workflow.operation == OPERATIONS_KEPT.get(dag_id, dag_id)
    assert workflow.proposal_table == f"proposals.{dag_id}_proposal"
    assert f"{dag_id}_proposal" in proposal_models, f"no dbt model {dag_id}_proposal (tagged propose)"


def test_every_proposal_model_is_a_dags(proposal_models: set[str]) -> None:
    assert proposal_models == {f"{dag_id}_proposal" for dag_id in ALL_DAGS}


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_every_dag_has_a_checker_group(dag_id: str) -> None:
    workflow = catalogue.declared()[dag_id].workflow
    assert policy_for(workflow.operation).group in ("RegistryCheckers", "ProgrammeCheckers", "PaymentCheckers",
                                                    "GrievanceCheckers")


@pytest.mark.parametrize("dag_id", [*ALL_DAGS, *SERVICE_DAGS])
def test_every_dag_has_tags_owner_and_doc(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.tags
    assert dag.doc_md and len(dag.doc_md) > 100
    assert all(task.owner == "benefitflow" for task in dag.tasks)


@pytest.mark.parametrize("dag_id", WORKFLOW_DAGS)
def test_workflows_have_the_six_steps_in_order(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    approve = dag.get_task("approve")
    assert isinstance(approve, MakerCheckerApproval)
    assert approve.defaults == ["Reject"]  # a timeout never approves
    assert approve.retries >= 1  # survives Airflow's resume race without losing the answer
    assert dag.get_task("commit").retries >= 1  # a commit cut short by a killed worker runs again, idempotently
    # An export also goes straight to its `export` step when no column is personal (see the test below).
    assert dag.get_task("intake").downstream_task_ids - {"export"} == {"validate", "propose", "commit"}
    (first_approval,) = dag.get_task("propose").downstream_task_ids
    assert first_approval.startswith("approve")
    assert approve.downstream_task_ids == {"commit"}
    assert dag.get_task("commit").downstream_task_ids == {"publish"}
    assert dag.get_task("publish").downstream_task_ids == {"published"}
    assert dag.get_task("published").outlets


@pytest.mark.parametrize("dag_id", [dag_id for dag_id in ALL_DAGS if "route" in DAGBAG.dags[dag_id].task_ids])
def test_exports_route_personal_data_through_a_checker_and_the_rest_at_once(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag_id.endswith("_export")
    assert dag.get_task("validate").downstream_task_ids == {"route", "propose"}
    assert dag.get_task("route").downstream_task_ids == {"propose", "export"}
    assert dag.get_task("export").downstream_task_ids == set()
    assert "approval" in dag.doc_md and "`national_id`" in dag.doc_md


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


@pytest.mark.parametrize("dag_id", EXPORT_DAGS)
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


@pytest.mark.parametrize("dag_id", WORKFLOW_DAGS)
def test_publish_rebuilds_every_model_that_reads_what_the_commit_writes(database, dagbag: DagBag, dag_id: str) -> None:
    """Every table model with a written table among its ancestors, however far, is rebuilt, and no view (the
    views over a rebuilt table are re-pointed in its transaction); so is the approvals mart, every time."""
    writes = dagbag.dags[dag_id].get_task("publish").op_kwargs["writes"]
    # A workflow's commit writes ledger tables of its own; an export's writes its file (and the decision) only.
    assert writes or "route" in dagbag.dags[dag_id].task_ids, f"{dag_id}'s commit writes no ledger table"
    manifest = dbt_runner.manifest()
    nodes = manifest["nodes"]
    assert {f"source.benefitflow.ledger.{table}" for table in writes} <= set(manifest["sources"])
    rebuilt = set(publish.selection(writes, manifest))
    for node, spec in nodes.items():
        if spec["resource_type"] != "model" or "propose" in spec["tags"]:
            continue
        upstream = publish.reachable(manifest["parent_map"], {node})
        reads_written = any(f"source.benefitflow.ledger.{table}" in upstream for table in writes)
        if spec["config"]["materialized"] == "view":
            assert spec["name"] not in rebuilt, f"{dag_id} rebuilds the view {spec['name']}"
        elif reads_written:
            assert spec["name"] in rebuilt, f"{dag_id} does not rebuild {spec['name']}"
    assert "mart_approvals" in rebuilt and not any(name.startswith("stg_") for name in rebuilt)
    incremental = _incremental_state(nodes)
    for name in rebuilt & set(incremental):
        inputs = {nodes[node]["name"] for node in publish.reachable(manifest["parent_map"], {incremental[name]})
                  if node in nodes}
        missing = (inputs & set(incremental)) - rebuilt
        assert not missing, f"{dag_id} rebuilds {name} but not the incremental models it reads first: {missing}"


def test_incremental_state_reads_only_the_ledger_and_other_incremental_state(database) -> None:
    """A model that takes in commits must read them as its inputs have taken them in: a plain table in
    between (rebuilt whole, at its own moment) could show a commit the model has not taken in, or miss one
    it has."""
    manifest = dbt_runner.manifest()
    nodes = manifest["nodes"]
    incremental = _incremental_state(nodes)
    assert {"individuals", "households", "bills", "mart_payments"} <= set(incremental)
    for name, node in incremental.items():
        for parent in manifest["parent_map"][node]:
            spec = nodes.get(parent)
            if spec is None:
                assert parent.startswith("source.benefitflow."), parent
                continue
            through_view = spec["config"]["materialized"] == "view" and spec["name"].startswith("stg_")
            assert through_view or spec["name"] in incremental, f"{name} reads the {spec['config']['materialized']} {spec['name']}"


def test_every_proposal_table_is_indexed_by_its_upload_or_request(proposal_models: set[str]) -> None:
    """A proposal table holds every upload's proposal; each step reads only its own (migration 014)."""
    proposals = {spec["name"]: spec["config"] for spec in dbt_runner.manifest()["nodes"].values()
                 if spec["resource_type"] == "model" and spec["name"] in proposal_models}
    assert {"individuals_import_proposal", "payroll_proposal"} <= set(proposals)
    for name, config in proposals.items():
        assert config["unique_key"] in {"upload_id", "request_id"}, name
        assert [config["unique_key"]] in [index["columns"] for index in config["indexes"]], name


def _incremental_state(nodes: dict) -> dict[str, str]:
    return {spec["name"]: node for node, spec in nodes.items() if publish.is_incremental_state(spec)}


@pytest.mark.parametrize(("dag_id", "rebuilt"), [
    ("platform_selftest", {"selftest_records", "mart_selftest_summary", "mart_approvals"}),
    ("grievance_status", {"grievances", "mart_approvals"}),
])
def test_a_small_workflow_rebuilds_its_own_state_not_the_registry(database, dagbag: DagBag, dag_id: str,
                                                                  rebuilt: set[str]) -> None:
    writes = dagbag.dags[dag_id].get_task("publish").op_kwargs["writes"]
    assert set(publish.selection(writes)) == rebuilt


def test_the_selection_names_models_dbt_knows(database) -> None:
    names = publish.selection(["individual_versions", "households"])
    assert {"individuals", "households", "mart_registry_individuals", "mart_approvals"} <= set(names)
    assert _listed_by_dbt(names) == set(names)


def _listed_by_dbt(names: list[str]) -> set[str]:
    result = dbt_runner.invoke(["ls", "--select", *names, "--resource-type", "model", "--output", "name", "--quiet"])
    assert result.success
    return set(result.result)


def test_only_the_duplicate_search_runs_on_a_schedule_and_not_for_past_nights(dagbag: DagBag, monkeypatch) -> None:
    """Every workflow waits for a maker but the nightly duplicate search (BENEFITFLOW_DUPLICATES_SEARCH_SCHEDULE; the
    test suite's services set it empty); a DAG that appears does not run for the nights before it."""
    import dataclasses
    import importlib

    from airflow.timetables.trigger import CronTriggerTimetable

    from benefitflow.registry import duplicates_search
    from benefitflow.workflows.dag import build_dag

    others = [dag_id for dag_id, dag in dagbag.dags.items() if dag_id != "duplicates_search"
              and dag_id not in SERVICE_DAGS and dag.timetable.can_be_scheduled]
    assert others == []
    monkeypatch.delenv("BENEFITFLOW_DUPLICATES_SEARCH_SCHEDULE", raising=False)
    assert importlib.reload(duplicates_search).SCHEDULE == "0 2 * * *"
    monkeypatch.setenv("BENEFITFLOW_DUPLICATES_SEARCH_SCHEDULE", "")
    assert importlib.reload(duplicates_search).SCHEDULE is None
    nightly = build_dag(dataclasses.replace(duplicates_search.WORKFLOW, dag_id="nightly_probe", schedule="0 2 * * *"))
    assert isinstance(nightly.timetable, CronTriggerTimetable) and nightly.timetable.summary == "0 2 * * *"
    assert not nightly.timetable._run_immediately and not nightly.catchup
