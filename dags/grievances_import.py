"""Airflow DAG `grievances_import`: grievance tickets from CSV, linked to the people who reported them."""

from benefitflow.grievances.grievances_import import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
