"""Airflow DAG `payments_export`: bills a filter selects, with status, amounts and receipts, as CSV (audited)."""

from benefitflow.payments.export import EXPORT
from benefitflow.workflows.dag import build_dag

dag = build_dag(EXPORT)
