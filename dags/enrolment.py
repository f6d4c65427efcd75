"""Airflow DAG `enrolment`: enrol eligible individuals or households into a plan by criteria."""

from benefitflow.programmes.enrolment import ENROLMENT
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(ENROLMENT)
