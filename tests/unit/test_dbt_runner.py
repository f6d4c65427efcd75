"""How dbt is called in this process: on a short stack of its own, with the run's values and nothing left behind."""

import os
import threading
import traceback

import pytest

from benefitflow import dbt_runner


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
