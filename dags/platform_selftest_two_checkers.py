"""Airflow DAG `platform_selftest_two_checkers`: the self-test approved by two distinct checkers."""

from benefitflow.selftest.platform_selftest_two_checkers import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
