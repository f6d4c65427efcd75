"""Airflow DAG `duplicates_review`: duplicate pairs confirmed (merged), dismissed or unmerged."""

from benefitflow.registry.duplicates_review import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
