"""The platform self-test: a tiny upload (code, label, amount) through all six steps."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions

from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FileChecks,
    FileIntake,
    Proposal,
    Publish,
    Workflow,
)
from benefitflow.workflows.inputs import FileSpec
from benefitflow.workflows.proposal_digest import ProposalRef

SPEC = FileSpec(kind="selftest", required_columns=("code", "label", "amount"))


def summarise(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    cur.execute(
        "SELECT count(*), coalesce(sum(amount), 0), min(amount), max(amount)"
        f" FROM {proposal.table} WHERE upload_id = %s",
        (proposal.key,),
    )
    rows, total, smallest, largest = cur.fetchone()
    return {"rows_to_append": rows, "total_amount": f"{total:.2f}",
            "smallest_amount": None if smallest is None else f"{smallest:.2f}",
            "largest_amount": None if largest is None else f"{largest:.2f}"}


def commit(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    cur.execute(
        "INSERT INTO ledger.selftest_records (commit_id, row_number, code, label, amount)"
        f" SELECT %s, row_number, code, label, amount FROM {proposal.table} WHERE upload_id = %s",
        (commit_id, proposal.key),
    )
    return cur.rowcount


WORKFLOW = Workflow(
    dag_id="platform_selftest",
    operation="selftest",
    intake=FileIntake(spec=SPEC),
    validate=FileChecks(suite="selftest"),
    propose=Proposal(summarise=summarise,
                     shown=("row_number", "code", "label", "amount")),
    approve=Approval(group="RegistryCheckers"),
    commit=Commit(append=commit, writes=("selftest_records",)),
    publish=Publish(asset="benefitflow://marts/selftest"),
    tags=("platform",),
    doc_md="""
### Platform self-test

Proves the platform end to end on a tiny CSV with the columns `code,label,amount`:

1. **intake** — the file (a name in the inbox) is recorded with its sha256 and copied into
   a staging table with `COPY`; the same file is refused the second time.
2. **validate** — the Great Expectations suite `expectations/selftest.json` checks every row;
   failing rows go to a CSV report in the outbox (`reports/`).
3. **propose** — dbt builds `proposals.platform_selftest_proposal` for this upload.
4. **approve** — a member of `RegistryCheckers` other than you approves or rejects it on the
   *Required actions* page.
5. **commit** — approved rows are appended to `ledger.selftest_records` with the decision.
6. **publish** — dbt rebuilds `registry.selftest_records` and the marts.

Parameters: `file` (in the inbox), `on_invalid_rows` (`reject_file` or `skip_invalid_rows`).
""",
)
