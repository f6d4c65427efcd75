"""Connections to the platform database and the schema migrations."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions

from benefitflow.core import config

MIGRATIONS_DIR = Path(__file__).parents[1] / "sql"


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """One transaction: committed when the block ends, rolled back on any error."""
    with closing(psycopg2.connect(url or config.database_url())) as conn, conn, conn.cursor() as cur:
        yield cur


@contextmanager
def session_lock(key: str, url: str | None = None, *, wait: bool = True) -> Iterator[bool]:
    """Hold PostgreSQL's advisory lock on `key` on a connection of its own while the block runs
    (the work inside, e.g. dbt, uses connections of its own); released when the block ends or fails.
    With `wait=False` a lock another session holds is not waited for: the block gets False."""
    with closing(psycopg2.connect(url or config.database_url())) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"SELECT {'pg_advisory_lock' if wait else 'pg_try_advisory_lock'}(hashtextextended(%s, 0))",
                        (key,))
            if not wait and not cur.fetchone()[0]:
                yield False
                return
            try:
                yield True
            finally:
                cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


class MigrationError(RuntimeError):
    pass


def migrate(owner_url: str) -> list[str]:
    """Apply the numbered SQL files in `sql/` not applied yet; return the names applied.

    An applied migration must never change: a file whose checksum differs is refused.
    """
    applied: list[str] = []
    with transaction(owner_url) as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS public.benefitflow_migrations ("
            " name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.migrate'))")
        cur.execute("SELECT name, sha256 FROM public.benefitflow_migrations")
        done = dict(cur.fetchall())
        for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
            text = path.read_text()
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    raise MigrationError(f"{path.name} changed after it was applied: add a new migration instead")
                continue
            cur.execute(text)
            cur.execute("INSERT INTO public.benefitflow_migrations (name, sha256) VALUES (%s, %s)",
                        (path.name, checksum))
            applied.append(path.name)
    return applied
