"""Airflow DAG `individuals_import`: individuals and households from CSV into the registry (see its doc in the UI)."""

from benefitflow.registry.importing import WORKFLOW
from benefitflow.workflow import build_upload_dag

dag = build_upload_dag(WORKFLOW)
