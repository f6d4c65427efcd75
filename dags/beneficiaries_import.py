"""Airflow DAG `beneficiaries_import`: a plan's beneficiaries from CSV, checked against the plan's own schema."""

from benefitflow.programmes.beneficiaries_import import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
