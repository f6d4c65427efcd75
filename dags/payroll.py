"""Airflow DAG `payroll`: combine a cycle's DUE bills into a payroll, approve it, export its file."""

from benefitflow.payments.payroll import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
