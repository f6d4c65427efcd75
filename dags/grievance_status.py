"""Airflow DAG `grievance_status`: move grievance tickets along their statuses, with a comment (the resolution)."""

from benefitflow.grievances.grievance_status import WORKFLOW
from benefitflow.workflows.dag import build_dag

dag = build_dag(WORKFLOW)
