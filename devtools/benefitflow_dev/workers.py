"""The CeleryExecutor on one machine (`make up EXECUTOR=celery`): Redis, and workers kept apart as if on machines of
their own.

Each worker has its own working directory, Airflow home, scratch folder (TMPDIR) and copy of the dbt project's build
output, and shares with the others only what machines of a deployment share: PostgreSQL, the broker, and the file
store (the inbox and outbox, and the task logs' folder, which the api-server reads).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benefitflow.core import file_store
from benefitflow_dev import services
from benefitflow_dev.instance import REDIS_USER, Instance

CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


def start(instance: Instance) -> None:
    """Redis, then each worker with its own folder (the dbt build output copied afresh: it may have been rebuilt)."""
    if not services.REDIS_SERVER.exists():
        raise SystemExit(f"EXECUTOR=celery needs redis-server at {services.REDIS_SERVER}: run scripts/ensure-redis.sh "
                         "(as root it installs Debian's redis-server), or set BENEFITFLOW_REDIS_SERVER")
    _write_redis_config(instance)
    _start_as_configured(instance, services.redis_service(instance), instance.run_dir / "redis.conf")
    _wait_for_port(instance.redis_port, "Redis")
    for extra in set(running_workers(instance)) - set(instance.worker_names):  # brought up before with more WORKERS
        services.stop(instance, services.celery_worker_service(instance, extra).name)
    for name in instance.worker_names:
        service = services.celery_worker_service(instance, name)
        if services.pid_of(instance, service.name) is not None and not _built_as_installation(instance, name):
            services.stop(instance, service.name)  # the project was built again: the worker takes the new build
        _start_as_configured(instance, service, instance.worker_config(name),
                             prepare=lambda name=name: prepare_worker_home(instance, name))


def _start_as_configured(instance: Instance, service: services.Service, settings: Path,
                         prepare: Callable[[], None] | None = None) -> None:
    """Start `service`; one still running with other settings (its file, command or environment: this installation
    brought up again after an upgrade) is stopped first, so that it takes these."""
    wanted = hashlib.sha256(settings.read_bytes() + json.dumps([service.command, service.env]).encode()).hexdigest()
    started_with = instance.run_dir / f"{service.name}.settings.sha256"
    if services.pid_of(instance, service.name) is not None and (
            not started_with.exists() or started_with.read_text() != wanted):
        services.stop(instance, service.name)
    if services.pid_of(instance, service.name) is None:
        if prepare is not None:
            prepare()
        services.start(instance, service)
        started_with.write_text(wanted)


def _built_as_installation(instance: Instance, name: str) -> bool:
    own = instance.dbt_build_stamp(instance.worker_home(name) / "dbt-target")
    installation = instance.dbt_build_stamp(instance.dbt_target)
    return own.exists() and installation.exists() and own.read_text() == installation.read_text()


def prepare_worker_home(instance: Instance, name: str) -> None:
    home = instance.worker_home(name)
    # The task user passes through and writes its scratch files (it cannot list them: 1733); the Airflow home is the
    # worker's alone. Every worker's tasks run as the one task user: the folders keep workers' files apart, not
    # their tasks.
    for folder, mode in ((home.parent, 0o711), (home, 0o711), (home / "airflow", 0o700), (home / "tmp", 0o1733)):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    target = home / "dbt-target"
    fresh = home / "dbt-target.new"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(instance.dbt_target, fresh, ignore=shutil.ignore_patterns("run", "compiled", "*.log"))
    for path in [fresh, *fresh.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)


def _write_redis_config(instance: Instance) -> None:
    data = instance.home / "redis"
    data.mkdir(exist_ok=True)
    data.chmod(0o700)
    instance.run_dir.mkdir(parents=True, exist_ok=True)
    file_store.write_secret(instance.run_dir / "redis.conf", redis_config(instance))


def redis_config(instance: Instance) -> str:
    """Loopback only; no login but Airflow's, which may not run Redis' admin or dangerous commands (see REDIS_USER)."""
    return "\n".join([
        "bind 127.0.0.1", f"port {instance.redis_port}", "protected-mode yes", "daemonize no",
        "user default off",
        f"user {REDIS_USER} on >{instance.secrets['redis_password']} ~* &* +@all -@admin -@dangerous",
        # Queued tasks survive a restart of the broker.
        f"dir {instance.home / 'redis'}", "appendonly yes", 'save ""', 'logfile ""',
    ]) + "\n"


def _wait_for_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _celery(instance: Instance, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Celery's own command line on Airflow's Celery app: the broker as the scheduler reaches it (airflow.cfg)."""
    command = [str(services.AIRFLOW_BIN / "celery"), "--app", CELERY_APP, *arguments]
    env = {**os.environ, **instance.airflow_env()}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=instance.home)


def active_queues(instance: Instance, timeout: float = 5) -> dict[str, list[str]]:
    """Each answering worker (its Celery node name, `worker-1@host`) and the queues it serves."""
    result = _celery(instance, "inspect", "active_queues", "--json", "--timeout", str(timeout))
    if result.returncode != 0 or not result.stdout.strip():
        return {}
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    return {worker: sorted(queue["name"] for queue in queues) for worker, queues in answers.items()}


def set_consuming(instance: Instance, queue: str, nodes: list[str], *, consuming: bool) -> None:
    """Make workers start or stop taking tasks from a queue (e.g. drain a machine before its maintenance)."""
    action = "add_consumer" if consuming else "cancel_consumer"
    result = _celery(instance, "control", action, queue, "--destination", ",".join(nodes), "--timeout", "5")
    if result.returncode != 0:
        raise RuntimeError(f"celery control {action} {queue} {nodes} failed: {result.stderr.strip()[-500:]}")


def wait_until_serving(instance: Instance, timeout: float = 120) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout
    wanted = {name.split("@")[0] for name in instance.worker_names}
    answering: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        answering = active_queues(instance)
        if wanted <= {worker.split("@")[0] for worker in answering}:
            return answering
        time.sleep(2)
    raise TimeoutError(f"Celery workers {sorted(wanted)} did not all answer within {timeout:.0f} s "
                       f"(answering: {sorted(answering) or 'none'}); see {instance.log_dir}/airflow-celery-*.log")


def running_workers(instance: Instance) -> list[str]:
    """The names of the workers this installation started and has not stopped, whatever WORKERS was then."""
    prefix = "airflow-celery-"
    return sorted(path.stem.removeprefix(prefix) for path in instance.run_dir.glob(f"{prefix}*.pid")
                  if services.pid_of(instance, path.stem) is not None)


def pid_files(instance: Instance) -> list[Path]:
    """Every broker and worker this installation started, whatever it was brought up with since."""
    return sorted([*instance.run_dir.glob("airflow-celery-*.pid"), *instance.run_dir.glob("redis.pid")])
