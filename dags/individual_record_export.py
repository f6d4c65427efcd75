"""Airflow DAG `individual_record_export`: one person's whole record as CSV in the outbox (audited)."""

from benefitflow.registry.individual_record_export import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
