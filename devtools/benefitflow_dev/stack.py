"""Bringing an installation up and down: database, Airflow, Superset. Every step is idempotent."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

from benefitflow.core import db, dbt_runner, file_store
from benefitflow.core.config import DBT_PROJECT_DIR, OUTBOX_FOLDERS
from benefitflow.platform import airflow_security, cli, readers, system_users
from benefitflow.registry_api import provision
from benefitflow.workflows import publish
from benefitflow_dev import demo, postgres, services, superset_setup, workers
from benefitflow_dev.instance import DEMO_USERS, PROJECT_ROOT, Instance
from benefitflow_dev.stack_tools import run


def prepare_database(instance: Instance) -> list[str]:
    """PostgreSQL started, its users and databases, the migrations; the names of those applied now."""
    postgres.start(instance)
    postgres.provision(instance)
    applied = db.migrate(instance.owner_database_url)
    with db.transaction(instance.owner_database_url) as cur:
        # Which regions each of Superset's logins sees, and SELECT on the marts protected so far (a mart
        # rebuilt by dbt is protected in the transaction that creates it: macros/readable_region.sql).
        readers.grant_marts(cur)
    print(f"  PostgreSQL on 127.0.0.1:{instance.pg_port}; migrations applied: {', '.join(applied) or 'none new'}")
    return applied


def build_dbt(instance: Instance, *, only_if_changed: bool = False, exclude: tuple[str, ...] = ()) -> None:
    """Build (and test) every model; the parse state it leaves in the instance's dbt target seeds every
    later in-process dbt call (dbt_runner), which then parses only what changed.

    only_if_changed: skip when this installation already built this very project (`make up` again);
    workflows keep the state up to date between builds. `make rebuild` builds again whatever the stamp.
    """
    stamp = instance.dbt_build_stamp(instance.dbt_target)
    project = _project_checksum()
    if only_if_changed and stamp.exists() and stamp.read_text() == project:
        print("  dbt build: the project is unchanged since this installation built it")
        return
    stamp.unlink(missing_ok=True)
    env = instance.benefitflow_env()
    # A changed project may compute state differently: every state model is rebuilt whole (--full-refresh;
    # proposals opt out, their rows are what checkers are asked about), taking turns with publishes.
    with db.session_lock(publish.PUBLISH_LOCK, instance.app_database_url):
        run([str(services.AIRFLOW_BIN / "dbt"), "build", "--full-refresh", "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(instance.dbt_target), *exclude], env, "dbt build", cwd=DBT_PROJECT_DIR)
    stamp.write_text(project)


def _project_checksum() -> str:
    digest = hashlib.sha256()
    for path in dbt_runner.project_paths():
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def prepare_airflow(instance: Instance) -> None:
    env = instance.airflow_env()
    instance.write_airflow_config()
    run([str(services.AIRFLOW_BIN / "airflow"), "db", "migrate"], env, "airflow db migrate")
    with closing(postgres.superuser_connection(instance, "airflow")) as conn, conn.cursor() as cur:
        airflow_security.grant_airflow_directory(cur)
    users = {
        name: {"password": instance.user_password(name), "roles": roles}
        for name, roles in DEMO_USERS.items() if roles
    }
    users_file = instance.run_dir / "airflow-users.json"
    file_store.write_secret(users_file, json.dumps(users))
    try:
        run([str(services.AIRFLOW_BIN / "python"), "-m", "benefitflow.platform.airflow_security", str(users_file)],
             env, "Airflow roles and users")
    finally:
        users_file.unlink(missing_ok=True)


def start_airflow(instance: Instance) -> None:
    """Airflow's services; with the CeleryExecutor first its broker and workers, each in a folder of its own."""
    refuse_another_executor_while_running(instance)
    instance.executor_record.write_text(instance.executor + "\n")
    if instance.uses_celery:
        workers.start(instance)
    for service in services.airflow_services(instance):
        services.start(instance, service)
    services.wait_for_http(f"{instance.airflow_url}/api/v2/monitor/health", what="Airflow api-server")
    if instance.uses_celery:
        answering = workers.wait_until_serving(instance)
        serving = (f"{name} ({', '.join(queues)})" for name, queues in sorted(answering.items()))
        print("  Celery workers: " + "; ".join(serving))


def refuse_another_executor_while_running(instance: Instance) -> None:
    """Before anything is rewritten (airflow.cfg holds the broker's settings): switching needs `make down` first."""
    recorded = instance.executor_record.read_text().strip() if instance.executor_record.exists() else "local"
    running = [name for name in ("airflow-scheduler", "airflow-api-server") if services.pid_of(instance, name)]
    running += [path.stem for path in workers.pid_files(instance) if services.pid_of(instance, path.stem)]
    if running and recorded != instance.executor:
        raise SystemExit(f"This installation runs with EXECUTOR={recorded} ({', '.join(running)}): `make down` "
                         f"first, then `make up EXECUTOR={instance.executor}`")


def start_registry_api(instance: Instance) -> None:
    """The partner systems' registry API: its clients' secrets and its signing key made once per installation."""
    provision.provision(instance.registry_api_secrets, instance.registry_api_key)
    if system_users.running_as_root():  # the registry_api_search DAG's tasks sign its deliveries
        system_users.share_with_tasks(instance.registry_api_key, system_users.prepare_task_user(PROJECT_ROOT))
    services.start(instance, services.registry_api_service(instance))
    services.wait_for_http(f"{instance.registry_api_url}/.well-known/jwks.json", what="registry API")


def _all_services(instance: Instance) -> list[services.Service]:
    return [*services.superset_services(instance), services.registry_api_service(instance),
            *services.airflow_services(instance), *services.celery_services(instance)]


def stop_all(instance: Instance) -> None:
    names = [s.name for s in _all_services(instance)]
    # Celery's workers after the scheduler that sends them tasks, the broker last; whatever EXECUTOR says now.
    names += [path.stem for path in workers.pid_files(instance) if path.stem not in names]
    names.sort(key=lambda name: name == "redis")
    for name in names:
        if services.stop(instance, name):
            print(f"  stopped {name}")
    if postgres.stop(instance):
        print("  stopped PostgreSQL")


def write_local_files(instance: Instance) -> None:
    credentials = {name: instance.user_password(name) for name in DEMO_USERS}
    file_store.write_secret(instance.home / "credentials.json", json.dumps(credentials, indent=2) + "\n")
    env = instance.benefitflow_env()
    lines = [f"export {key}='{env[key]}'" for key in
             ("BENEFITFLOW_DATABASE_URL", "AIRFLOW_URL", "SUPERSET_URL", "BENEFITFLOW_INBOX", "BENEFITFLOW_OUTBOX")]
    lines.append(f"export BENEFITFLOW_REGISTRY_API_URL='{instance.registry_api_url}'")
    file_store.write_secret(instance.home / "env", "\n".join(lines) + "\n")
    airflow_env = instance.airflow_env()
    file_store.write_secret(instance.home / "airflow.env",
                            "".join(f"export {key}='{value}'\n" for key, value in sorted(airflow_env.items())))


def prepare_file_store(instance: Instance) -> None:
    """The inbox, which tasks read, and the outbox, which they write: as root, the task user's (task_secrets.py).

    The installation's folder can be passed through, not listed: PostgreSQL's user reaches its data folder
    in it, a task the dbt target."""
    instance.home.chmod(0o711)
    if not instance.inbox.exists():
        instance.inbox.mkdir(parents=True)
        instance.inbox.chmod(0o755)  # whatever the umask: tasks read it
    for folder in OUTBOX_FOLDERS:  # made here, so that a step run as root (a test, a benchmark) makes none of them
        (instance.outbox / folder).mkdir(parents=True, exist_ok=True)
    if system_users.running_as_root():
        system_users.give_tree(instance.outbox, system_users.prepare_task_user(PROJECT_ROOT))
        instance.outbox.chmod(0o750)  # its files are 0640: the platform's group reads them, nobody else


def up(instance: Instance, *, with_superset: bool = True, with_demo: bool = True) -> None:
    started = time.monotonic()
    refuse_another_executor_while_running(instance)
    prepare_file_store(instance)
    print("Database", flush=True)
    migrated = prepare_database(instance)
    build_dbt(instance, only_if_changed=not migrated)  # a new or migrated database is always built
    print("Airflow", flush=True)
    prepare_airflow(instance)
    start_airflow(instance)
    finish_files(instance)
    start_registry_api(instance)
    write_local_files(instance)
    # Superset's set-up and the demo's workflow runs need nothing of each other: side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        superset = pool.submit(_superset_up, instance) if with_superset else None
        if with_demo:
            print("Demo data", flush=True)
            demo.load(instance)
        if superset is not None:
            superset.result()
    print(f"Up in {time.monotonic() - started:.0f} s", flush=True)


def finish_files(instance: Instance) -> None:
    """What the platform stopped in the middle of, on file: a payroll committed while its file was being written gets
    its file, and originals archived by an intake whose transaction never committed go (as the task user, the outbox's
    owner: benefitflow.platform.cli finish-files)."""
    command = [str(services.AIRFLOW_BIN / "python"), "-m", "benefitflow.platform.cli", "finish-files"]
    if system_users.running_as_root():
        command = ["runuser", "-u", system_users.TASK_USER, "--", *command]
    result = subprocess.run(command, env=instance.airflow_env(), cwd=instance.outbox,  # not the operator's shell's
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"finishing files failed: {(result.stdout + result.stderr).strip()[-2000:]}")
    for line in result.stdout.splitlines():
        if line.startswith((cli.PAYROLL_FILES_REPORT, cli.UPLOADS_REPORT)):
            print(f"  {line}", flush=True)


def _superset_up(instance: Instance) -> None:
    print("Superset", flush=True)
    superset_setup.prepare(instance)
    superset_setup.start(instance)


def rebuild(instance: Instance) -> None:
    """Every derived table rebuilt whole from the ledger (`dbt build --full-refresh`), on a running installation.

    Proposals waiting for a checker are left alone: their rows are what the checker is asked about."""
    postgres.start(instance)
    build_dbt(instance, exclude=("--exclude", "tag:propose"))


def status(instance: Instance) -> dict[str, str]:
    report = {"postgres": "running" if postgres.is_running(instance) else "stopped"}
    for service in _all_services(instance):
        pid = services.pid_of(instance, service.name)
        report[service.name] = f"running (pid {pid})" if pid else "stopped"
    if instance.uses_celery and services.pid_of(instance, "redis"):
        for worker, queues in sorted(workers.active_queues(instance).items()):
            report[f"  celery {worker}"] = "serving queues " + ", ".join(queues)
    return report
