"""Airflow DAG `individuals_import`: individuals and households from CSV into the registry (see its doc in the UI)."""

from benefitflow.registry.individuals_import import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
