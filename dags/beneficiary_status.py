"""Airflow DAG `beneficiary_status`: change the status of beneficiaries chosen by criteria or a file of ids."""

from benefitflow.programmes.beneficiary_status import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
