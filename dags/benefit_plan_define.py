"""Airflow DAG `benefit_plan_define`: a benefit plan, or a new version of one, from a JSON or YAML document."""

from benefitflow.programmes.define import DEFINE
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(DEFINE)
