"""Airflow DAG `platform_selftest`: the six workflow steps on a tiny file (see its doc in the UI)."""

from benefitflow.selftest.platform_selftest import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
