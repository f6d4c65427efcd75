"""dbt: the whole project, unit tests included, builds on an empty database; state is derived."""

import multiprocessing
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benefitflow.core import db, dbt_runner
from benefitflow.workflows.export_files import PERSONAL_COLUMNS

DBT = str(Path(sys.executable).with_name("dbt"))
REF = re.compile(r"\bref\(\s*'(\w+)'\s*\)")
SOURCE = re.compile(r"\bsource\(\s*'(\w+)'\s*,\s*'(\w+)'\s*\)")


def test_dbt_build_passes_with_unit_tests(database, tmp_path) -> None:
    result = subprocess.run([DBT, "build", "--profiles-dir", ".", "--target-path", str(tmp_path)], cwd="dbt_project",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "ERROR=0" in result.stdout
    assert "unit_test" in result.stdout


def test_derived_tables_are_rebuilt_from_the_ledger(database) -> None:
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM marts.mart_approvals")
        before = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM ledger.decisions")
        decisions = cur.fetchone()[0]
    with db.transaction() as cur:
        cur.execute("DROP TABLE marts.mart_approvals")
    dbt_runner.run(["run", "--select", "mart_approvals"])
    with db.transaction() as cur:
        cur.execute("SELECT count(*) FROM marts.mart_approvals")
        assert cur.fetchone()[0] == decisions
    assert before <= decisions


# Free text written by makers and checkers may name anyone: it stays in marts with a region (or out of the marts).
FREE_TEXT_COLUMNS = frozenset({"reason", "comment", "message", "notes"})


def test_marts_every_manager_reads_hold_no_personal_data_nor_free_text(database) -> None:
    with db.transaction() as cur:
        cur.execute("SELECT table_name, array_agg(column_name::text) FROM information_schema.columns"
                    " WHERE table_schema = 'marts' GROUP BY table_name")
        marts = dict(cur.fetchall())
    without_region = {name: set(columns) for name, columns in marts.items() if "region" not in columns}
    assert {"mart_approvals", "mart_uploads", "mart_payrolls"} <= without_region.keys()
    found = {name: sorted(columns & (PERSONAL_COLUMNS | FREE_TEXT_COLUMNS)) for name, columns in without_region.items()}
    assert {name: columns for name, columns in found.items() if columns} == {}


def test_every_model_declares_what_it_reads_whatever_its_run_values(database) -> None:
    """A process parses the project once and keeps it (dbt_runner.parsed_project), so what a model reads only for some
    run values (an update's current version, an upload's rows) must be declared whatever the values: parsed with the
    defaults, as the installation parses, every ref and source a model names is among its dependencies."""
    undeclared = {}
    for node in dbt_runner.manifest()["nodes"].values():
        if node["resource_type"] != "model":
            continue
        named = {f"model.benefitflow.{name}" for name in REF.findall(node["raw_code"])}
        named |= {f"source.benefitflow.{source}.{table}" for source, table in SOURCE.findall(node["raw_code"])}
        if missing := named - set(node["depends_on"]["nodes"]):
            undeclared[node["name"]] = sorted(missing)
    assert undeclared == {}


def test_a_process_parses_the_project_once(database) -> None:
    parsed = dbt_runner.parsed_project()
    dbt_runner.run(["run", "--select", "mart_approvals"])
    assert dbt_runner.parsed_project() is parsed


def test_no_model_is_ephemeral_nor_declares_constraints(database) -> None:
    """dbt marks a kept manifest's nodes as it compiles them (injected CTEs of ephemeral models, resolved constraint
    targets), so a second call in the same process would compile those differently: none is used here."""
    for node in dbt_runner.manifest()["nodes"].values():
        if node["resource_type"] == "model":
            assert node["config"]["materialized"] != "ephemeral", node["name"]
            assert not node.get("constraints"), node["name"]
            assert not any(column.get("constraints") for column in node["columns"].values()), node["name"]


def _parses_in_a_task() -> bool:
    """In a process forked from the fork server: would dbt parse the project again?"""
    parsed = []
    dbt_runner._parse = lambda *options: parsed.append(options)
    dbt_runner.parsed_project()
    return bool(parsed)


def test_a_task_forked_from_the_fork_server_finds_the_project_parsed(database) -> None:
    """Airflow's fork server imports benefitflow.core.dbt_preload (benefitflow_dev.instance.TASK_PRELOAD): what it forks parses
    nothing."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["benefitflow.core.dbt_preload"])
    with context.Pool(1) as pool:
        assert pool.apply(_parses_in_a_task) is False


def test_a_proposal_reads_only_the_checked_table_of_its_own_upload(database) -> None:
    """The checked table's name reaches dbt as a run value: refused unless it is the upload's own (and quoted)."""
    for given in ("stage_grievances_8_checked", "stage_grievances_7_checked; drop table x", None):
        with pytest.raises(dbt_runner.DbtError, match="checked_table must be upload 7's checked table"):
            dbt_runner.run(["run", "--select", "grievances_import_proposal"],
                           {"upload_id": 7, "checked_table": given})


def test_status_change_proposals_declare_what_their_macro_reads(database) -> None:
    nodes = dbt_runner.manifest()["nodes"]
    for model, state, transitions in (("beneficiary_status_proposal", "beneficiaries", "beneficiary_status_transitions"),
                                      ("grievance_status_proposal", "grievances", "grievance_status_transitions")):
        depends = set(nodes[f"model.benefitflow.{model}"]["depends_on"]["nodes"])
        assert {f"model.benefitflow.{state}", "model.benefitflow.stg_intake__requests",
                "source.benefitflow.intake.request_selection", f"source.benefitflow.ledger.{transitions}"} <= depends
