"""Airflow DAG `benefit_plan_close`: close a plan; its beneficiaries not yet graduated graduate."""

from benefitflow.programmes.benefit_plan_close import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
