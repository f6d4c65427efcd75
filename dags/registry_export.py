"""Airflow DAG `registry_export`: the individuals a filter selects, as CSV in the outbox (audited)."""

from benefitflow.registry.registry_export import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
