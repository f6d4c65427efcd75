"""Airflow DAG `payment_cycle`: bill a plan's ACTIVE beneficiaries for one payment cycle."""

from benefitflow.payments.cycle import CYCLE
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(CYCLE)
