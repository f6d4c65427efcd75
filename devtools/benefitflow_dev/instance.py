"""One installation of the platform: its folder, ports and secrets.

The installation for people lives in `.local/`; the test suite makes throwaway ones in
temporary folders. Secrets are generated once per installation and kept in
`<home>/secrets.json` (git-ignored, mode 600).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from benefitflow.core import file_store
from benefitflow.platform import readers, system_users
from benefitflow.platform.workers import WORKER_NAME_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DEMO_USERS: dict[str, list[str]] = {
    # username -> Airflow roles (empty: Superset only)
    "admin": ["Admin"],
    "maker": ["Maker"],
    "maker2": ["Maker"],
    "engineer": ["DataEngineer"],  # clears and retries failed runs
    "checker": ["RegistryCheckers", "ProgrammeCheckers", "GrievanceCheckers"],
    "checker2": ["RegistryCheckers"],  # the second checker where a policy needs two distinct ones
    "payment_checker": ["PaymentCheckers"],
    "manager": [],  # Superset: Manager with all regions
    "manager_north": [],  # Superset: Manager narrowed to region North (PostgreSQL row-level security)
}
# `make up EXECUTOR=celery`: Airflow's CeleryExecutor, a Redis broker and BENEFITFLOW_CELERY_WORKERS workers, each as
# if on a machine of its own (benefitflow_dev.workers). The default runs tasks with the LocalExecutor.
EXECUTORS = ("local", "celery")
EXECUTOR_VARIABLE = "BENEFITFLOW_EXECUTOR"
WORKERS_VARIABLE = "BENEFITFLOW_CELERY_WORKERS"
DEFAULT_WORKERS = 2
DATABASE_USERS = ("airflow", "airflow_reader", "superset", "benefitflow_owner", "benefitflow_app", "superset_reader",
                  "benefitflow_registry_api")


# A throwaway instance parses its DAG files once (they do not change during a test session; re-parsing
# every 30 s took 14 % of a core).
THROWAWAY_AIRFLOW_SETTINGS = {
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "86400",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "86400",
    # No nightly duplicate search in a test session: a run appearing mid-suite would wait for a checker.
    "BENEFITFLOW_DUPLICATES_SEARCH_SCHEDULE": "",
}
# A workflow's seven steps each wait a few scheduler loops to be scheduled, queued and started after the last
# one ends: at Airflow's 1 s idle sleep a one-row selftest run took 15 s from trigger to success (answered at
# once), at 0.2 s 7 s. The scheduler then spends about a tenth of a core while nothing runs.
SCHEDULER_IDLE_SLEEP_SECONDS = "0.2"

# Redis' default user is off; Airflow's services and workers log in as this one, which may not run Redis' admin
# and dangerous commands (CONFIG, DEBUG, MODULE, FLUSHALL, KEYS, SHUTDOWN…): a task that found the password in its
# worker's memory cannot reconfigure Redis to write files (deploy/README.md says what it still could).
REDIS_USER = "airflow"
BROKER_DATABASE, RESULT_DATABASE = 0, 1

CELERY_SETTINGS = {
    # A worker takes the next task only when it has a free slot: two idle workers share a burst of small runs.
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    # A worker that dies mid-task: its task is failed (and retried, elsewhere) after this long without a heartbeat.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "benefitflow.platform.celery_config.CELERY_CONFIG",
}


# What every task imports, loaded once by the scheduler's fork server (a fresh interpreter, never the scheduler
# itself) and shared by every executor worker and task forked from it; a task then starts in about a second.
TASK_PRELOAD = ("airflow.sdk.execution_time.task_runner", "benefitflow_plugin", "benefitflow.workflows.dag",
                "benefitflow.workflows.export", "great_expectations", "dbt.cli.main", "benefitflow.core.dbt_preload")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_or_create_secrets(path: Path) -> dict[str, str]:
    existing: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "fernet_key": lambda: Fernet.generate_key().decode(),
        "jwt_secret": lambda: secrets.token_urlsafe(48),
        "api_secret_key": lambda: secrets.token_urlsafe(48),
        "superset_secret_key": lambda: secrets.token_urlsafe(48),
        **{f"db_{user}": lambda: secrets.token_urlsafe(24) for user in DATABASE_USERS},
        **{f"user_{name}": lambda: secrets.token_urlsafe(12) for name in DEMO_USERS},
        # Superset's regional logins' passwords derive from it (benefitflow.platform.readers.login_password).
        "reader_logins_key": lambda: secrets.token_urlsafe(32),
        "redis_password": lambda: secrets.token_urlsafe(24),  # the Celery broker's (EXECUTOR=celery)
    }
    missing = {key: make() for key, make in wanted.items() if key not in existing}
    key = existing.get("reader_logins_key") or missing["reader_logins_key"]
    missing |= {f"db_{entry.login}": readers.login_password(key, entry.login) for entry in readers.derived_logins()
                if f"db_{entry.login}" not in existing}
    if missing or not path.exists():
        existing.update(missing)
        file_store.write_secret(path, json.dumps(existing, indent=2))
    return existing


def chosen_executor(recorded: Path | None = None) -> str:
    """EXECUTOR (BENEFITFLOW_EXECUTOR) when given, else what the installation was last brought up with, else local."""
    value = os.environ.get(EXECUTOR_VARIABLE, "").strip().lower()
    if not value and recorded is not None and recorded.exists():
        value = recorded.read_text().strip()
    value = value or "local"
    if value not in EXECUTORS:
        raise ValueError(f"EXECUTOR={value!r}: one of {', '.join(EXECUTORS)}")
    return value


def chosen_worker_count() -> int:
    value = os.environ.get(WORKERS_VARIABLE, "").strip() or str(DEFAULT_WORKERS)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_VARIABLE}={value!r}: a number of Celery workers, 1 or more")
    return int(value)


@dataclass
class Instance:
    """Paths, ports and secrets of one installation."""

    home: Path
    pg_port: int = 55432
    airflow_port: int = 28080
    superset_port: int = 28088
    registry_api_port: int = 28090
    worker_log_port: int = 28793
    trigger_log_port: int = 28794
    redis_port: int = 28379
    executor: str = "local"  # or "celery": see EXECUTORS
    worker_count: int = DEFAULT_WORKERS  # Celery workers, with the CeleryExecutor
    inbox: Path = field(default=PROJECT_ROOT / "data" / "inbox")
    outbox: Path = field(default=PROJECT_ROOT / "data" / "outbox")
    throwaway_instance: bool = False  # the test suite's: DAG files never change while it runs
    secrets: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.secrets = _load_or_create_secrets(self.home / "secrets.json")

    @classmethod
    def default(cls) -> Instance:
        home = PROJECT_ROOT / ".local"
        return cls(home=home, executor=chosen_executor(home / "executor"), worker_count=chosen_worker_count())

    @classmethod
    def throwaway(cls, home: Path) -> Instance:
        return cls(
            home=home,
            pg_port=free_port(),
            airflow_port=free_port(),
            superset_port=free_port(),
            registry_api_port=free_port(),
            worker_log_port=free_port(),
            trigger_log_port=free_port(),
            redis_port=free_port(),
            executor=chosen_executor(),
            worker_count=chosen_worker_count(),
            inbox=home / "inbox",
            outbox=home / "outbox",
            throwaway_instance=True,
        )

    # -- locations -------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def dbt_target(self) -> Path:
        return self.home / "dbt-target"

    @staticmethod
    def dbt_build_stamp(target: Path) -> Path:
        """In a dbt target folder: the sha256 of the project its build output was made from (stack.build_dbt)."""
        return target / "built-project.sha256"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def superset_home(self) -> Path:
        return self.home / "superset"

    @property
    def uses_celery(self) -> bool:
        return self.executor == "celery"

    @property
    def executor_record(self) -> Path:
        """What the installation was last brought up with (`make down`, `make status` and a plain `make up` read it)."""
        return self.home / "executor"

    @property
    def worker_names(self) -> list[str]:
        """The Celery workers' names (each also a queue only it serves); none with the LocalExecutor."""
        return [f"worker-{number}" for number in range(1, self.worker_count + 1)] if self.uses_celery else []

    def worker_home(self, name: str) -> Path:
        """A worker's own folder, as on a machine of its own: working directory, Airflow home, scratch, dbt target."""
        return self.home / "workers" / name

    @property
    def airflow_logs(self) -> Path:
        """Task logs: on the shared file store, where the api-server reads every worker's (no worker serves them)."""
        return self.airflow_home / "logs"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def superset_url(self) -> str:
        return f"http://127.0.0.1:{self.superset_port}"

    @property
    def registry_api_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_api_port}"

    @property
    def registry_api_secrets(self) -> Path:
        """The partner systems' client secrets (registry_api/clients.yaml), made for this installation."""
        return self.home / "registry-api-clients.json"

    @property
    def registry_api_key(self) -> Path:
        """The registry API's ed25519 signing key (PEM)."""
        return self.home / "registry-api-signing-key.pem"

    # -- database URLs ---------------------------------------------------------------
    def database_url(self, user: str, database: str, driver: str = "postgresql") -> str:
        password = self.secrets[f"db_{user}"]
        return f"{driver}://{user}:{password}@127.0.0.1:{self.pg_port}/{database}"

    @property
    def app_database_url(self) -> str:
        return self.database_url("benefitflow_app", "benefitflow")

    @property
    def owner_database_url(self) -> str:
        return self.database_url("benefitflow_owner", "benefitflow")

    def user_password(self, username: str) -> str:
        return self.secrets[f"user_{username}"]

    # -- environments for the services ------------------------------------------------
    def benefitflow_env(self) -> dict[str, str]:
        """What DAG tasks, dbt and scripts need to reach the platform's data."""
        return {
            "BENEFITFLOW_DATABASE_URL": self.app_database_url,
            "BENEFITFLOW_DB_HOST": "127.0.0.1",
            "BENEFITFLOW_DB_PORT": str(self.pg_port),
            "BENEFITFLOW_DB_USER": "benefitflow_app",
            "BENEFITFLOW_DB_PASSWORD": self.secrets["db_benefitflow_app"],
            "BENEFITFLOW_DB_NAME": "benefitflow",
            "BENEFITFLOW_INBOX": str(self.inbox),
            "BENEFITFLOW_OUTBOX": str(self.outbox),
            "AIRFLOW_URL": self.airflow_url,
            "SUPERSET_URL": self.superset_url,
            "BENEFITFLOW_AIRFLOW_DIRECTORY_URL": self.database_url("airflow_reader", "airflow"),
            "DBT_PROFILES_DIR": str(PROJECT_ROOT / "dbt_project"),
            # This installation's dbt target: `dbt build` at start-up leaves the manifest and parse state there.
            "BENEFITFLOW_DBT_TARGET": str(self.dbt_target),
            # The registry_api_search DAG signs what it delivers to partner systems with the registry API's key.
            "BENEFITFLOW_REGISTRY_API_SIGNING_KEY": str(self.registry_api_key),
        }

    @property
    def airflow_config(self) -> Path:
        return self.airflow_home / "airflow.cfg"

    def airflow_service_secrets(self) -> dict[tuple[str, str], str]:
        """What only Airflow's services need: kept in `airflow.cfg` (0600), never in an environment a task inherits."""
        return {
            ("core", "fernet_key"): self.secrets["fernet_key"],
            ("database", "sql_alchemy_conn"): self.database_url("airflow", "airflow", driver="postgresql+psycopg2"),
            ("api", "secret_key"): self.secrets["api_secret_key"],
            ("api_auth", "jwt_secret"): self.secrets["jwt_secret"],
            **(self._celery_secrets() if self.uses_celery else {}),
        }

    def _celery_secrets(self) -> dict[tuple[str, str], str]:
        """The broker and the result backend: both in Redis, so a worker needs no metadata-database login at all."""
        return {("celery", "broker_url"): self.redis_url(BROKER_DATABASE),
                ("celery", "result_backend"): self.redis_url(RESULT_DATABASE)}

    def redis_url(self, database: int) -> str:
        return f"redis://{REDIS_USER}:{self.secrets['redis_password']}@127.0.0.1:{self.redis_port}/{database}"

    def write_airflow_config(self) -> None:
        """The services' `airflow.cfg`; with Celery, each worker's own too, with what a worker needs and no more."""
        _write_settings(self.airflow_config, self.airflow_service_secrets())
        self.airflow_home.chmod(0o700)  # its task logs and configuration are the services'
        for name in self.worker_names:
            _write_settings(self.worker_config(name), self._celery_secrets())

    def worker_config(self, name: str) -> Path:
        """A worker's `airflow.cfg`: the broker's and the result backend's URLs only. A task is a fork of a worker, and
        holds what its worker held: no Fernet key, JWT or API secret, no metadata-database owner (a worker reaches
        Airflow through the execution API with each task's own token, as on a machine of its own)."""
        return self.worker_home(name) / "airflow" / "airflow.cfg"

    def airflow_env(self) -> dict[str, str]:
        return {
            **self.benefitflow_env(),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW_CONFIG": str(self.airflow_config),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.uses_celery else "LocalExecutor",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.airflow_logs),
            "AIRFLOW__CORE__PARALLELISM": "4",
            # Executor workers start as fresh interpreters, not forks of the scheduler, so a task (forked from a
            # worker) holds nothing of the scheduler's memory: platform/task_secrets.py checks it.
            "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
            "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(TASK_PRELOAD),
            # Started as root, a task process becomes this user before it parses its DAG file (task_secrets.py).
            **({system_users.TASK_USER_VARIABLE: system_users.TASK_USER} if system_users.running_as_root() else {}),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # FAB, plus the rule that keeps trigger/answer apart from pause/clear/mark (review C2).
            "AIRFLOW__CORE__AUTH_MANAGER": "benefitflow.platform.auth_manager.BenefitflowFabAuthManager",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.airflow_port),
            "AIRFLOW__API__BASE_URL": self.airflow_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # Parsing lags on a busy two-core machine: the default 50 s marks DAGs stale (untriggerable) for a while.
            "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "300",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": SCHEDULER_IDLE_SLEEP_SECONDS,
            "PYTHONPATH": str(PROJECT_ROOT / "plugins"),
            "PATH": f"{PROJECT_ROOT / '.venv' / 'airflow' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "NO_PROXY": "*",
            **(CELERY_SETTINGS if self.uses_celery else {}),
            **(THROWAWAY_AIRFLOW_SETTINGS if self.throwaway_instance else {}),
            # The test that kills a Celery worker waits this long for Airflow to give its step to the other worker.
            **({"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30"}
               if self.throwaway_instance and self.uses_celery else {}),
        }

    def worker_env(self, name: str) -> dict[str, str]:
        """A Celery worker's: the services' settings, but its own configuration, Airflow home, scratch, dbt target and
        name."""
        home = self.worker_home(name)
        return {
            **self.airflow_env(),
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW_CONFIG": str(self.worker_config(name)),
            "TMPDIR": str(home / "tmp"),
            "BENEFITFLOW_DBT_TARGET": str(home / "dbt-target"),
            WORKER_NAME_VARIABLE: name,
            # What its task slots inherit already loaded (benefitflow.platform.celery_config).
            "BENEFITFLOW_WORKER_PRELOAD": ",".join(TASK_PRELOAD),
            # Task instances record the worker that ran them, not the machine all the workers share here.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "benefitflow.platform.workers.hostname",
        }

    def registry_api_env(self) -> dict[str, str]:
        return {
            "BENEFITFLOW_REGISTRY_API_DATABASE_URL": self.database_url("benefitflow_registry_api", "benefitflow"),
            "BENEFITFLOW_REGISTRY_API_SECRETS": str(self.registry_api_secrets),
            "BENEFITFLOW_REGISTRY_API_SIGNING_KEY": str(self.registry_api_key),
            "PYTHONPATH": str(PROJECT_ROOT / "plugins"),
            "NO_PROXY": "*",
        }

    def superset_env(self) -> dict[str, str]:
        return {
            "SUPERSET_CONFIG_PATH": str(PROJECT_ROOT / "superset" / "superset_config.py"),
            "SUPERSET_HOME": str(self.superset_home),
            "SUPERSET_SECRET_KEY": self.secrets["superset_secret_key"],
            "SUPERSET_METADATA_URL": self.database_url("superset", "superset"),
            # superset_config.DB_CONNECTION_MUTATOR derives the regional logins' passwords from it.
            "BENEFITFLOW_READER_LOGINS_KEY": self.secrets["reader_logins_key"],
            # The marts connection is stored as the no-region login; the mutator widens it to all regions with this.
            "BENEFITFLOW_READER_DATABASE_URL": self.database_url("superset_reader", "benefitflow"),
            "FLASK_APP": "superset.app:create_app()",
            "NO_PROXY": "*",
        }


def _write_settings(path: Path, settings: dict[tuple[str, str], str]) -> None:
    """An `airflow.cfg` of these settings, readable by its owner only."""
    sections: dict[str, list[str]] = {}
    for (section, key), value in settings.items():
        sections.setdefault(section, []).append(f"{key} = {value.replace('%', '%%')}")  # configparser interpolates
    text = "".join(f"[{section}]\n" + "\n".join(lines) + "\n\n" for section, lines in sections.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    file_store.write_secret(path, "# Written by benefitflow (benefitflow_dev/instance.py).\n" + text)
