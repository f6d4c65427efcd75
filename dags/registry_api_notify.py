"""Airflow DAG `registry_api_notify`: partner systems' subscriptions, notified after each publish of the registry."""

from benefitflow.registry_api.subscriptions import build_dag

dag = build_dag()
