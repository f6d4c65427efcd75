"""Airflow DAG `beneficiaries_export`: a plan's beneficiaries a filter selects, as CSV in the outbox (audited)."""

from benefitflow.programmes.beneficiaries_export import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
