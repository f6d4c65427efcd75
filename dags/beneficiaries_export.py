"""Airflow DAG `beneficiaries_export`: a plan's beneficiaries a filter selects, as CSV in the outbox (audited)."""

from benefitflow.export_workflow import build_export_dag
from benefitflow.programmes.export import EXPORT

dag = build_export_dag(EXPORT)
