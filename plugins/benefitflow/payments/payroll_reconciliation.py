"""The `payroll_reconciliation` workflow: the provider's filled payroll file makes bills PAID or FAILED.

The file is the payroll file as exported (openIMIS columns), with `Paid` (Yes/No) and `Receipt`
filled, optionally `Amount Paid` and `Paid On`; other columns are kept with the result. Rows are
matched on `Code`. Refused rows: an unknown code, a bill that is not (or no longer) in this
payroll, a `Status` that no longer matches the bill's (stale), a paid row without a receipt, an
amount differing from the amount due, a code twice. Bills of the payroll the file leaves out are
counted for the checker. On approval the results go to `ledger.bill_events`; the payroll is
RECONCILED once none of its bills is left open. The same file twice is refused at intake, and
rows already reconciled are stale: a second upload changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core import columns, db
from benefitflow.core.errors import CommitConflict, WorkflowError
from benefitflow.core.parameters import money
from benefitflow.payments.payroll import approved_payroll, finish_payroll_files, payrolls_to_reconcile
from benefitflow.workflows import publish, row_checks, suites
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FileChecks,
    FileIntake,
    Options,
    Proposal,
    Publish,
    Workflow,
)
from benefitflow.workflows.inputs import FileSpec, checked_table
from benefitflow.workflows.proposal_digest import ProposalRef

if TYPE_CHECKING:  # GX is imported by the tasks that validate, not when the DAG is parsed
    from great_expectations.core import ExpectationSuite

KIND = "payroll_reconciliation"
COLUMNS = {  # the file's column -> the name used here
    "Payroll Name": "payroll_name", "Payroll Status": "payroll_status", "First Name": "first_name",
    "Last Name": "last_name", "Date of Birth": "date_of_birth", "Code": "code", "Status": "status",
    "Amount": "amount", "Type": "type", "Receipt": "receipt", "Paid": "paid", "Amount Paid": "amount_paid",
    "Paid On": "paid_on",
}
REQUIRED = ("code", "status", "receipt", "paid")
PAID_ANSWERS = {"yes": True, "no": False}
CHECKS = row_checks.beside(__file__)


def payroll_name(options: Options) -> str:
    return str(options.get("payroll") or "").strip()


def payroll_of(cur: psycopg2.extensions.cursor, options: Options) -> int:
    """The id of the approved, not yet reconciled payroll the file answers for."""
    name = payroll_name(options)
    found = approved_payroll(cur, name)
    if found is None:
        raise WorkflowError(f"payroll: no approved payroll named {name[:80]!r} (the `Payroll Name` of its file)")
    if found[1] == "RECONCILED":
        raise WorkflowError(f"payroll {name} is reconciled already: every bill in it is paid or failed")
    return found[0]


def spec_for(options: Options) -> FileSpec:
    with db.transaction() as cur:
        payroll_of(cur, options)
    known = tuple(COLUMNS.values())
    return FileSpec(kind=KIND, required_columns=REQUIRED, optional_columns=tuple(c for c in known if c not in REQUIRED),
                    allow_extra_columns=True, aliases=tuple(COLUMNS.items()))


def prepare(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> str:
    """Each row with the bill its code names (if any) and that bill's state; other columns kept as jsonb."""
    header, staged, target = upload["header"], upload["staged_table"], checked_table(upload)
    payroll_id = payroll_of(cur, options)

    def text(column: str) -> sql.Composable:
        return sql.SQL("nullif(btrim(s.{}), '')").format(sql.Identifier(column)) if column in header \
            else sql.SQL("NULL::text")

    extra = [c for c in header if c not in COLUMNS.values()]
    cur.execute(sql.SQL(
        "CREATE UNLOGGED TABLE intake.{target} AS"
        " SELECT s.row_number, {code} AS code, {status} AS status, {receipt} AS receipt, {paid} AS paid,"
        " lower({paid}) AS paid_answer, {payroll_name} AS payroll_name,"
        " CASE WHEN {amount} ~ {number} THEN {amount}::numeric END AS amount,"
        " CASE WHEN {amount_paid} ~ {number} THEN {amount_paid}::numeric END AS amount_paid,"
        " {amount_paid} AS amount_paid_text,"
        " intake.parse_iso_date({paid_on}) AS paid_on,"
        " CASE WHEN {paid_on} IS NOT NULL THEN intake.parse_iso_date({paid_on}) IS NOT NULL END AS paid_on_is_date,"
        " jsonb_strip_nulls(jsonb_build_object({extra})) AS provider_row,"
        " bl.bill_id, bl.status AS bill_status, bl.amount AS amount_due, bl.payroll_id AS bill_payroll_id,"
        " bl.payroll_name AS bill_payroll_name,"
        " EXISTS (SELECT 1 FROM ledger.payroll_bills pb WHERE pb.bill_id = bl.bill_id AND pb.payroll_id = {payroll})"
        "   AS was_in_payroll"
        " FROM intake.{staged} s LEFT JOIN payments.bills bl ON bl.bill_code = {code}"
    ).format(target=sql.Identifier(target), staged=sql.Identifier(staged), code=text("code"), status=text("status"),
             receipt=text("receipt"), paid=text("paid"), payroll_name=text("payroll_name"), amount=text("amount"),
             amount_paid=text("amount_paid"), paid_on=text("paid_on"), number=sql.Literal(columns.NUMBER_PATTERN),
             payroll=sql.Literal(payroll_id),
             extra=sql.SQL(", ").join(sql.SQL("{}, s.{}").format(sql.Literal(c), sql.Identifier(c)) for c in extra)))
    cur.execute(sql.SQL("CREATE INDEX ON intake.{} (row_number)").format(sql.Identifier(target)))
    cur.execute(sql.SQL("ANALYZE intake.{}").format(sql.Identifier(target)))
    return target


def suite_for(upload: dict[str, Any], options: Options) -> ExpectationSuite:
    header = upload["header"]
    expectations = [
        columns.expectation("not_null", "code", "the bill's code is required"),
        columns.expectation("unique", "code", "the same code appears more than once in the file"),
        columns.expectation("not_null", "paid", "Paid is required (Yes or No)"),
        columns.expectation("in_set", "paid_answer", "Paid must be Yes or No", value_set=list(PAID_ANSWERS),
                           report="paid"),
        columns.expectation("not_null", "status", "the Status exported with the bill is required"),
    ]
    if "amount_paid" in header:
        expectations.append(columns.expectation("match_regex", "amount_paid_text", "not an amount (e.g. 1500.00)",
                                               regex=columns.NUMBER_PATTERN, report="amount_paid"))
    if "paid_on" in header:
        expectations.append(columns.expectation("in_set", "paid_on_is_date", "not a real date (expected YYYY-MM-DD)",
                                               value_set=[True], report="paid_on"))
    return suites.suite_from_document({"name": KIND, "expectations": expectations})


def check(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> None:
    name = payroll_name(options)  # checked when the file was taken in
    parts = {"upload": sql.Literal(int(upload["upload_id"])), "checked": sql.Identifier(checked_table(upload)),
             "payroll": sql.Literal(name)}
    for query in CHECKS.values():  # in the file's order
        row_checks.run(cur, query, **parts)


def proposal_vars(upload: dict[str, Any], options: Options) -> dict[str, Any]:
    with db.transaction() as cur:
        return {"payroll_id": payroll_of(cur, options)}


def summarise(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    upload_id = proposal.key
    cur.execute(f"SELECT count(*) FILTER (WHERE status = 'PAID'), coalesce(sum(amount_paid) FILTER (WHERE status ="
                f" 'PAID'), 0), count(*) FILTER (WHERE status = 'FAILED'),"
                f" coalesce(sum(amount_due) FILTER (WHERE status = 'FAILED'), 0), min(currency), min(payroll_id)"
                f" FROM {proposal.table} WHERE upload_id = %s", (upload_id,))
    paid, paid_total, failed, failed_total, currency, payroll_id = cur.fetchone()
    cur.execute("SELECT count(DISTINCT row_number) FILTER (WHERE rule IN ('status:stale', 'code:moved')),"
                " count(DISTINCT row_number) FILTER (WHERE rule = 'amount:mismatch'),"
                " count(DISTINCT row_number) FILTER (WHERE rule IN ('code:unknown', 'code:not_in_payroll'))"
                " FROM intake.row_errors WHERE upload_id = %s", (upload_id,))
    stale, mismatched, wrong_codes = cur.fetchone()
    return {"paid": paid, "paid_total": money(paid_total, currency), "failed": failed,
            "failed_total": money(failed_total, currency), "stale_rows": stale, "mismatched_rows": mismatched,
            "unknown_or_foreign_codes": wrong_codes, "bills_left_open": bills_left_open(cur, proposal, payroll_id)}


def bills_left_open(cur: psycopg2.extensions.cursor, proposal: ProposalRef, payroll_id: int | None) -> int | None:
    """Bills of the payroll neither reconciled before nor answered by this file (missing from it): the open
    bills the commits so far left (`_open_bills`), less this file's rows that close a bill still open in
    the payroll. The cost follows the file, not the payroll."""
    upload_id = proposal.key
    if payroll_id is None:
        return None
    cur.execute(f"SELECT count(*) FROM {proposal.table} p WHERE p.upload_id = %s AND p.payroll_id = %s"
                f" AND NOT EXISTS (SELECT FROM ledger.bill_events e WHERE e.bill_id = p.bill_id"
                f"                 AND e.payroll_id = p.payroll_id AND e.status IN ('PAID', 'FAILED'))",
                (upload_id, payroll_id))
    closing = cur.fetchone()[0]
    open_bills = _open_bills(cur, payroll_id)
    return None if open_bills is None else open_bills - closing


def _open_bills(cur: psycopg2.extensions.cursor, payroll_id: int) -> int | None:
    """The payroll's open bills as its commits left them (ledger.payroll_open_bills): each commit, under the
    payroll lock, writes the count less what it closed, so the smallest is the latest whatever order the
    commit ids were handed out in."""
    cur.execute("SELECT min(open_bills) FROM ledger.payroll_open_bills WHERE payroll_id = %s", (payroll_id,))
    found = cur.fetchone()[0]
    return None if found is None else int(found)


def commit(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """The results to the ledger; RECONCILED when no bill of the payroll is left open."""
    upload_id = proposal.key
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.payroll'))")
    cur.execute(f"SELECT count(*) FROM {proposal.table} p JOIN ledger.bill_events e ON e.bill_id = p.bill_id"
                f" AND e.payroll_id = p.payroll_id AND e.status IN ('PAID', 'FAILED') WHERE p.upload_id = %s",
                (upload_id,))
    if done := cur.fetchone()[0]:
        raise CommitConflict(f"{done} of these bills were reconciled by another upload since the proposal")
    # None of these rows' bills is closed (just checked, under the lock): each row closes one.
    cur.execute(f"SELECT payroll_id, count(*) FROM {proposal.table} WHERE upload_id = %s GROUP BY"
                f" payroll_id", (upload_id,))
    closing = dict(cur.fetchall())
    cur.execute(f"INSERT INTO ledger.bill_events (bill_id, status, payroll_id, amount_paid, receipt, paid_on,"
                f" provider_row, reason, upload_id, row_number, commit_id)"
                f" SELECT bill_id, status, payroll_id, amount_paid, receipt, paid_on, provider_row,"
                f" 'reconciled from the provider''s file', upload_id, row_number, %s FROM {proposal.table}"
                f" WHERE upload_id = %s ORDER BY bill_id", (commit_id, upload_id))  # index filled in order: payroll.py
    reconciled = cur.rowcount
    publish.refresh_statistics(cur)
    for payroll_id, closed in closing.items():
        if (open_before := _open_bills(cur, payroll_id)) is None:
            raise CommitConflict(f"payroll {payroll_id} has no count of its open bills (ledger.payroll_open_bills)")
        open_bills = open_before - closed
        cur.execute("INSERT INTO ledger.payroll_open_bills (payroll_id, commit_id, open_bills) VALUES (%s, %s, %s)",
                    (payroll_id, commit_id, open_bills))
        if open_bills == 0:
            cur.execute("INSERT INTO ledger.payroll_events (payroll_id, status, commit_id)"
                        " VALUES (%s, 'RECONCILED', %s)", (payroll_id, commit_id))
    return reconciled


WORKFLOW = Workflow(
    dag_id="payroll_reconciliation",
    intake=FileIntake(spec=spec_for, params={
        "payroll": Param("", type="string", minLength=1, maxLength=80,
                         description="The payroll's name, as in the file's `Payroll Name` column"),
    }, choices={"payroll": payrolls_to_reconcile}),
    validate=FileChecks(suite=suite_for, prepare=prepare, check=check),
    propose=Proposal(summarise=summarise, vars=proposal_vars,
                     shown=("row_number", "status", "amount_due", "amount_paid", "currency", "paid_on")),
    approve=Approval(group="PaymentCheckers"),
    commit=Commit(append=commit, writes=("bill_events", "payroll_events", "payroll_open_bills")),
    publish=Publish(asset="benefitflow://payments/payrolls"),
    tags=("payments",),
    recover=finish_payroll_files,
    doc_md="""
### Reconcile a payroll from the provider's filled file

**Parameters**
- `payroll` — the payroll's name (its file's `Payroll Name`).
- `file` — the provider's file in the inbox: the exported payroll file with `Paid` (Yes/No) and
  `Receipt` filled; `Amount Paid` and `Paid On` (YYYY-MM-DD) may be added; other columns are kept.
- `on_invalid_rows` — `reject_file` (default) or `skip_invalid_rows` (the refused rows' bills stay open).

**Checks** — every `Code` is a bill of this payroll (not moved on to another), `Paid` is Yes or
No, a paid row has a receipt, `Status` still matches the bill's (else the row is stale), an
amount given equals the amount due, no code twice. The checker sees paid, failed, stale and
mismatched counts and amounts, and how many bills are still open. On approval bills become PAID
(with receipt) or FAILED; the payroll is RECONCILED when none is left open. FAILED bills can move
into a new payroll (`payroll` with `include_unpaid_from`). A member of `PaymentCheckers` other
than you approves.
""",
)
