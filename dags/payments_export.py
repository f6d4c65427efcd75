"""Airflow DAG `payments_export`: bills a filter selects, with status, amounts and receipts, as CSV (audited)."""

from benefitflow.export_workflow import build_export_dag
from benefitflow.payments.export import EXPORT

dag = build_export_dag(EXPORT)
