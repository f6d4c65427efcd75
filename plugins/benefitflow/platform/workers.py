"""Which worker ran a task, where several Celery workers share one machine (`make up EXECUTOR=celery`).

Airflow records the host a task ran on (`task_instance.hostname`) from `[core] hostname_callable`. Each worker of
the one-machine Celery stack (`make up EXECUTOR=celery`) sets BENEFITFLOW_WORKER_NAME and this callable,
so a run's task instances say which worker ran each step; on a deployment with a worker per machine the variable is
unset and the machine's name is recorded, as Airflow does by default. Task logs are on the shared file store
(`[logging] base_log_folder`), where the api-server reads them, so no worker has to serve them under this name.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_VARIABLE = "BENEFITFLOW_WORKER_NAME"


def hostname() -> str:
    return os.environ.get(WORKER_NAME_VARIABLE) or socket.getfqdn()
