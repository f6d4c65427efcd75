"""Airflow DAG `beneficiary_status`: change the status of beneficiaries chosen by criteria or a file of ids."""

from benefitflow.programmes.status import STATUS
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(STATUS)
