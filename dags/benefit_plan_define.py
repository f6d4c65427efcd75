"""Airflow DAG `benefit_plan_define`: a benefit plan, or a new version of one, from a JSON or YAML document."""

from benefitflow.programmes.benefit_plan_define import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
