"""Airflow DAG `payment_cycle`: bill a plan's ACTIVE beneficiaries for one payment cycle."""

from benefitflow.payments.cycle import CYCLE
from benefitflow.workflows.dag import build_dag

dag = build_dag(CYCLE)
