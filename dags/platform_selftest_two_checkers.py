"""Airflow DAG `platform_selftest_two_checkers`: the self-test approved by two distinct checkers."""

from benefitflow.selftest import WORKFLOW_TWO_CHECKERS
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW_TWO_CHECKERS)
