"""Airflow DAG `payroll_reconciliation`: the provider's filled payroll file makes bills PAID or FAILED."""

from benefitflow.payments.payroll_reconciliation import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
