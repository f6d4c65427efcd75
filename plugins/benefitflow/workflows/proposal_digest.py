"""The digest of a proposal: what a checker approves, and what commit must find again.

Computed in SQL (`ledger.proposal_digest`, migration 009) over the operation, the upload or
request it is for (file sha256, parameters, the document validation made of them) and the
proposal rows in a canonical order, so at any size no row is loaded into Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2.extensions

from benefitflow.core import db

SHORT = 12  # hex characters a person compares: 48 bits, enough to tell two proposals apart by eye


@dataclass(frozen=True)
class ProposalRef:
    """Which rows a run proposes: its operation's proposal table, keyed by its upload or request."""

    operation: str
    table: str  # schema-qualified, e.g. proposals.platform_selftest_proposal
    upload_id: int | None = None
    request_id: int | None = None

    @property
    def is_request(self) -> bool:
        return self.request_id is not None

    @property
    def key(self) -> int:
        """The upload or request id: what the proposal rows, the hooks and the input's record are keyed by."""
        return int(self.request_id if self.is_request else self.upload_id)  # type: ignore[arg-type]

    @property
    def key_column(self) -> str:
        return "request_id" if self.is_request else "upload_id"

    @property
    def input_kind(self) -> str:
        return "request" if self.is_request else "upload"

    @property
    def input_name(self) -> str:
        """How messages name the input: "upload 12" or "request 7"."""
        return f"{self.input_kind} {self.key}"

    @property
    def lock_key(self) -> str:
        return f"benefitflow.proposal:{self.table}:{self.key}"


def compute(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> str:
    cur.execute("SELECT ledger.proposal_digest(%s, %s::regclass, %s, %s)",
                (proposal.operation, proposal.table, proposal.upload_id, proposal.request_id))
    return str(cur.fetchone()[0])


def short(digest: str | None) -> str:
    return digest[:SHORT] if digest else "(none)"


def lock_in_transaction(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> None:
    """Hold the proposal still until the transaction ends (a propose of the same key waits)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (proposal.lock_key,))


@contextmanager
def locked(proposal: ProposalRef) -> Iterator[None]:
    """Hold the proposal's lock while it is (re)built: dbt writes it on a connection of its own."""
    with db.session_lock(proposal.lock_key):
        yield
