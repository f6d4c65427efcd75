"""Airflow DAG `duplicates_search`: pairs of registry records that look like one person, kept for review."""

from benefitflow.registry.duplicates_search import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
