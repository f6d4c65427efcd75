"""Airflow DAG `payroll`: combine a cycle's DUE bills into a payroll, approve it, export its file."""

from benefitflow.payments.payroll import PAYROLL
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(PAYROLL)
