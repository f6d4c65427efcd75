"""Long-running services as background processes with pid files and logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benefitflow_dev.instance import PROJECT_ROOT, Instance

AIRFLOW_BIN = PROJECT_ROOT / ".venv" / "airflow" / "bin"
SUPERSET_BIN = PROJECT_ROOT / ".venv" / "superset" / "bin"


SUPERVISE = Path(__file__).with_name("supervise.py")
REDIS_SERVER = Path(os.environ.get("BENEFITFLOW_REDIS_SERVER", "/usr/bin/redis-server"))  # scripts/ensure-redis.sh


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path = PROJECT_ROOT


def airflow_services(instance: Instance) -> list[Service]:
    """Airflow's services, each run again when it exits on its own (benefitflow_dev/supervise.py: the scheduler
    exits when PostgreSQL restarts)."""
    env = instance.airflow_env()
    airflow = str(AIRFLOW_BIN / "airflow")
    return [
        Service(name, [str(AIRFLOW_BIN / "python"), str(SUPERVISE), *command], env)
        for name, command in (
            ("airflow-api-server", [airflow, "api-server"]),
            ("airflow-scheduler", [airflow, "scheduler"]),
            ("airflow-dag-processor", [airflow, "dag-processor"]),
            ("airflow-triggerer", [airflow, "triggerer"]),
            # Resumes approval steps whose answer Airflow recorded but did not deliver (an Airflow 3.3.2 race).
            ("approval-watchdog", [str(AIRFLOW_BIN / "python"), "-m", "benefitflow.platform.approval_watchdog"]),
        )
    ]


def celery_worker_service(instance: Instance, name: str) -> Service:
    """One Celery worker: the default queue and a queue of its own name; its logs go to the shared log folder."""
    return Service(
        f"airflow-celery-{name}",
        [str(AIRFLOW_BIN / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h",
         "--queues", f"default,{name}", "--skip-serve-logs"],
        instance.worker_env(name), cwd=instance.worker_home(name),
    )


def celery_services(instance: Instance) -> list[Service]:
    """The workers and their broker, in the order they stop (none with the LocalExecutor)."""
    if not instance.uses_celery:
        return []
    return [*(celery_worker_service(instance, name) for name in instance.worker_names), redis_service(instance)]


def redis_service(instance: Instance) -> Service:
    return Service("redis", [str(REDIS_SERVER), str(instance.run_dir / "redis.conf")], {}, cwd=instance.home)


def registry_api_service(instance: Instance) -> Service:
    """The partner systems' DCI registry API (benefitflow.registry_api), on 127.0.0.1."""
    return Service(
        "registry-api",
        [str(AIRFLOW_BIN / "uvicorn"), "benefitflow.registry_api.app:app", "--host", "127.0.0.1",
         "--port", str(instance.registry_api_port), "--no-access-log", "--no-server-header"],
        instance.registry_api_env(),
    )


def superset_services(instance: Instance) -> list[Service]:
    return [
        Service(
            "superset",
            [str(SUPERSET_BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--timeout", "120",
             "--bind", f"127.0.0.1:{instance.superset_port}", "--limit-request-line", "0",
             "superset.app:create_app()"],
            instance.superset_env(),
        )
    ]


def _pid_file(instance: Instance, name: str) -> Path:
    return instance.run_dir / f"{name}.pid"


def pid_of(instance: Instance, name: str) -> int | None:
    path = _pid_file(instance, name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    return pid


def start(instance: Instance, service: Service) -> int:
    if pid := pid_of(instance, service.name):
        return pid
    instance.run_dir.mkdir(parents=True, exist_ok=True)
    instance.log_dir.mkdir(parents=True, exist_ok=True)
    log = (instance.log_dir / f"{service.name}.log").open("ab")
    process = subprocess.Popen(
        service.command, env={**os.environ, **service.env}, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True, cwd=service.cwd,
    )
    _pid_file(instance, service.name).write_text(str(process.pid))
    return process.pid


def stop(instance: Instance, name: str, grace_seconds: float = 20) -> bool:
    pid = pid_of(instance, name)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            continue
        break
    _pid_file(instance, name).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect a stopped child of this process (the test suite starts services as children)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_for_http(url: str, timeout: float = 180, what: str = "service") -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last_error = str(exc)
        except OSError as exc:
            last_error = str(exc)
        time.sleep(1)
    raise TimeoutError(f"{what} did not answer at {url} within {timeout:.0f} s ({last_error})")
