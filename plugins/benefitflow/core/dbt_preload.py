"""Imported by Airflow's fork server at its start (benefitflow_dev.instance.TASK_PRELOAD): the dbt project is parsed
there once, and every task forked from it starts with it (dbt_runner.parsed_project) instead of parsing it
again — about a second of each proposing or publishing task. A failure here only costs that second: the task
parses for itself (and the fork server, which would stop on an error raised by a preloaded module, goes on)."""

from __future__ import annotations

import logging

from benefitflow.core import dbt_runner

try:
    dbt_runner.parsed_project()
except Exception:  # noqa: BLE001 - anything raised here would stop Airflow's fork server
    logging.getLogger(__name__).warning("the dbt project was not parsed ahead of the tasks", exc_info=True)
