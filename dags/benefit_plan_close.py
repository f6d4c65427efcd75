"""Airflow DAG `benefit_plan_close`: close a plan; its beneficiaries not yet graduated graduate."""

from benefitflow.programmes.define import CLOSE
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(CLOSE)
