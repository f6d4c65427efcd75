"""Airflow DAG `grievance_status`: move grievance tickets along their statuses, with a comment (the resolution)."""

from benefitflow.grievances.status import STATUS
from benefitflow.request_workflow import build_request_dag

dag = build_request_dag(STATUS)
