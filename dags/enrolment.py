"""Airflow DAG `enrolment`: enrol eligible individuals or households into a plan by criteria."""

from benefitflow.programmes.enrolment import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
