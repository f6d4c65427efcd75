"""Airflow DAG `grievances_import`: grievance tickets from CSV, linked to the people who reported them."""

from benefitflow.grievances.importing import WORKFLOW
from benefitflow.workflow import build_upload_dag

dag = build_upload_dag(WORKFLOW)
