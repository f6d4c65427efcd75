"""Airflow DAG `held_bills_release`: release bills held over the plan's transaction limit, by their own approval."""

from benefitflow.payments.release import RELEASE
from benefitflow.workflows.dag import build_dag

dag = build_dag(RELEASE)
