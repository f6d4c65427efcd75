"""Airflow DAG `platform_selftest`: the six workflow steps on a tiny file (see its doc in the UI)."""

from benefitflow.selftest import WORKFLOW
from benefitflow.workflow import build_upload_dag

dag = build_upload_dag(WORKFLOW)
