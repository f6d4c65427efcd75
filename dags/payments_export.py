"""Airflow DAG `payments_export`: bills a filter selects, with status, amounts and receipts, as CSV (audited)."""

from benefitflow.payments.payments_export import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
