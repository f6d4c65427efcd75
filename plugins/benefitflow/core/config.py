"""Settings every task reads from its environment (see `.local/env` and `.local/airflow.env`)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"


class ConfigurationError(RuntimeError):
    pass


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(
            f"{name} is not set: source .local/env, or run through `make up` / `make test`"
        )
    return value


def database_url() -> str:
    return _required("BENEFITFLOW_DATABASE_URL")


def inbox() -> Path:
    return Path(os.environ.get("BENEFITFLOW_INBOX", PROJECT_ROOT / "data" / "inbox")).resolve()


def outbox() -> Path:
    return Path(os.environ.get("BENEFITFLOW_OUTBOX", PROJECT_ROOT / "data" / "outbox")).resolve()


# What the steps write in the outbox, each in its folder (made at start-up, the task user's: make up, tests).
OUTBOX_FOLDERS = ("uploads", "reports", "exports", "payrolls")


def outbox_folder(name: str) -> Path:
    if name not in OUTBOX_FOLDERS:
        raise ValueError(f"no outbox folder {name!r}: one of {', '.join(OUTBOX_FOLDERS)}")
    return outbox() / name


def error_report(upload_id: int) -> Path:
    """Where an upload's error report is written (and, by its name, what a download of it is called)."""
    return outbox_folder("reports") / f"upload-{upload_id:08d}-errors.csv"


def upload_suite(upload_id: int) -> Path:
    """Where the Great Expectations suite an upload was validated with is kept, beside its error report."""
    return outbox_folder("reports") / f"upload-{upload_id:08d}-suite.json"


def max_upload_bytes() -> int:
    """The largest file intake takes in (BENEFITFLOW_MAX_UPLOAD_BYTES; 4 GiB: ten million people in a registry file)."""
    return int(os.environ.get("BENEFITFLOW_MAX_UPLOAD_BYTES", 4 << 30))


def web_upload_max_bytes() -> int:
    """The largest file the Upload page and its REST twin take (BENEFITFLOW_WEB_UPLOAD_MAX_BYTES; 200 MB)."""
    return int(os.environ.get("BENEFITFLOW_WEB_UPLOAD_MAX_BYTES", 200 * 1000 * 1000))


def upload_file_url(upload_id: int, which: str) -> str:
    """Where an Airflow user downloads an upload's `original`, `error-report` or `suite` (see upload_files.py)."""
    return f"{api_base_url()}/benefitflow/uploads/{upload_id}/{which}"


def proposal_csv_url(dag_id: str, key: int) -> str:
    """Where an Airflow user downloads a run's whole proposal (see proposal_files.py)."""
    return f"{api_base_url()}/benefitflow/proposals/{dag_id}/{key}.csv"


def api_base_url() -> str:
    """Airflow's api-server as its users reach it (AIRFLOW__API__BASE_URL); empty: links are relative."""
    return os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
