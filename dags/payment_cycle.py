"""Airflow DAG `payment_cycle`: bill a plan's ACTIVE beneficiaries for one payment cycle."""

from benefitflow.payments.payment_cycle import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
