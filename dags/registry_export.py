"""Airflow DAG `registry_export`: the individuals a filter selects, as CSV in the outbox (audited)."""

from benefitflow.export_workflow import build_export_dag
from benefitflow.registry.search import EXPORT

dag = build_export_dag(EXPORT)
