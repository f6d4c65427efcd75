"""Imported by each Celery worker once, before it forks its task slots (see celery_config.py): the modules named in
BENEFITFLOW_WORKER_PRELOAD, comma-separated, so that each task does not import them again (seconds per task)."""

from __future__ import annotations

import importlib
import os

PRELOAD_VARIABLE = "BENEFITFLOW_WORKER_PRELOAD"

for _module in filter(None, (name.strip() for name in os.environ.get(PRELOAD_VARIABLE, "").split(","))):
    importlib.import_module(_module)
