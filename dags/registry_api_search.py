"""Airflow DAG `registry_api_search`: partner systems' asynchronous searches, answered and delivered."""

from benefitflow.registry_api.async_search import build_dag

dag = build_dag()
