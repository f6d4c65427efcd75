"""Airflow DAG `held_bills_release`: release bills held over the plan's transaction limit, by their own approval."""

from benefitflow.payments.held_bills_release import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
