"""Airflow DAG `payroll_reconciliation`: the provider's filled payroll file makes bills PAID or FAILED."""

from benefitflow.payments.reconciliation import WORKFLOW
from benefitflow.workflow import build_upload_dag

dag = build_upload_dag(WORKFLOW)
