"""Airflow's Celery settings (`[celery] celery_config_options`), plus what each worker loads before forking its slots.

A Celery worker imports the modules of `imports` once, in its main process, before it forks its task slots; tasks
forked from those then start with dbt, Great Expectations and the platform already loaded, as the LocalExecutor's
fork server gives them (`[scheduler] mp_forkserver_preload`). Which modules: BENEFITFLOW_WORKER_PRELOAD (set by
the one-machine stack and the deployment). The scheduler and the api-server read this dictionary but import none
of them.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "benefitflow.platform.worker_preload"],
}
