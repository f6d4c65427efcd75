"""Connections to the platform database and the schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions

from benefitflow import config

MIGRATIONS_DIR = Path(__file__).parent / "sql"


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """One transaction: committed when the block ends, rolled back on any error."""
    with closing(psycopg2.connect(url or config.database_url())) as conn:
        with conn, conn.cursor() as cur:
            yield cur


def migrate(owner_url: str) -> list[str]:
    """Apply the numbered SQL files in `sql/` not applied yet; return the names applied."""
    applied: list[str] = []
    with transaction(owner_url) as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS public.benefitflow_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.migrate'))")
        cur.execute("SELECT name FROM public.benefitflow_migrations")
        done = {row[0] for row in cur.fetchall()}
        for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
            if path.name in done:
                continue
            cur.execute(path.read_text())
            cur.execute("INSERT INTO public.benefitflow_migrations (name) VALUES (%s)", (path.name,))
            applied.append(path.name)
    return applied
