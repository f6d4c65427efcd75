"""How dbt is called in this process: on a short stack of its own, with the run's values and nothing left behind."""

import os
import threading
import traceback

import pytest

from benefitflow.core import dbt_runner


def _deep(levels: int, call):
    return call() if levels == 0 else _deep(levels - 1, call)


def test_dbt_runs_on_a_short_stack_whatever_the_callers_depth() -> None:
    seen = {}

    def call(args: list[str]) -> str:
        seen["depth"] = len(traceback.extract_stack())
        seen["thread"] = threading.current_thread()
        return "result of " + " ".join(args)

    assert _deep(100, lambda: dbt_runner._on_a_short_stack(call, ["run"])) == "result of run"
    assert seen["depth"] < 10
    assert seen["thread"] is not threading.current_thread()


def test_what_dbt_raises_is_raised_to_the_caller() -> None:
    def call(args: list[str]) -> None:
        raise KeyError(args[0])

    with pytest.raises(KeyError, match="build"):
        dbt_runner._on_a_short_stack(call, ["build"])


def test_run_values_are_set_for_the_call_only(monkeypatch) -> None:
    monkeypatch.setenv("BENEFITFLOW_RUN_EARLIER", "1")
    with dbt_runner.run_values({"upload_id": 7, "columns": ["a"]}):
        assert os.environ["BENEFITFLOW_RUN_UPLOAD_ID"] == "7"
        assert os.environ["BENEFITFLOW_RUN_COLUMNS"] == '["a"]'
        assert "BENEFITFLOW_RUN_EARLIER" not in os.environ
    assert "BENEFITFLOW_RUN_UPLOAD_ID" not in os.environ
    assert os.environ["BENEFITFLOW_RUN_EARLIER"] == "1"


def test_the_project_files_are_what_dbt_reads_and_change_with_an_edit(tmp_path, monkeypatch) -> None:
    for name in ("dbt_project.yml", "models/a.sql", "target/manifest.json", "logs/dbt.log", ".user.yml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("select 1")
    monkeypatch.setattr(dbt_runner, "DBT_PROJECT_DIR", tmp_path)
    before = dbt_runner.project_files()
    assert [os.path.relpath(path, tmp_path) for path, _, _ in before] == ["dbt_project.yml", "models/a.sql"]
    (tmp_path / "target" / "manifest.json").write_text("{}")
    assert dbt_runner.project_files() == before
    (tmp_path / "models" / "a.sql").write_text("select 2 as changed")
    assert dbt_runner.project_files() != before


def test_the_parsed_project_is_kept_until_a_project_file_changes(monkeypatch) -> None:
    parses = []
    files = [(("model.sql", 1, 1),)]
    monkeypatch.setattr(dbt_runner, "_kept_manifest", None)
    monkeypatch.setattr(dbt_runner, "_parse", lambda *options: parses.append(options) or object())
    monkeypatch.setattr(dbt_runner, "project_files", lambda: files[-1])
    first = dbt_runner.parsed_project()
    assert dbt_runner.parsed_project() is first and len(parses) == 1
    files.append((("model.sql", 2, 1),))
    assert dbt_runner.parsed_project() is not first and len(parses) == 2
