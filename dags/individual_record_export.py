"""Airflow DAG `individual_record_export`: one person's whole record as CSV in the outbox (audited)."""

from benefitflow.export_workflow import build_export_dag
from benefitflow.records.individual import EXPORT

dag = build_export_dag(EXPORT)
