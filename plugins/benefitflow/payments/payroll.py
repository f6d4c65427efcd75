"""The `payroll` workflow: DUE bills of a cycle combined for a payment provider, approved, exported.

validate selects the bills (the cycle's DUE bills no payroll holds yet, optionally of one plan and
matching criteria, plus the unpaid bills of an earlier payroll when `include_unpaid_from` names
it); dbt's `payroll_proposal` leaves out bills another payroll waiting for approval holds. On
approval the payroll and its bills go to the ledger, moved bills are DUE again, and the payroll
file is written to the outbox in openIMIS's column layout with a control file (rows, total,
sha256), the sha256 recorded with it. A rejected payroll never reaches the ledger: its bills stay free.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core import config, db, file_store
from benefitflow.core.errors import CommitConflict, RequestError
from benefitflow.core.parameters import code_of, money
from benefitflow.programmes import plans
from benefitflow.workflows import publish
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FormCheck,
    FormIntake,
    Options,
    Proposal,
    Publish,
    Workflow,
    plan_parameter,
)
from benefitflow.workflows.inputs import checksum
from benefitflow.workflows.proposal_digest import ProposalRef

MAX_PAYMENT_POINT = 100
# openIMIS's payroll layout (what providers already fill in), then the recipient's identifiers.
PAYROLL_COLUMNS = ("Payroll Name", "Payroll Status", "First Name", "Last Name", "Date of Birth", "Code", "Status",
                   "Amount", "Type", "Receipt", "Paid")
IDENTIFIER_COLUMNS = ("Currency", "Individual Id", "National Id", "Household Code", "Beneficiary Id", "Plan", "Cycle")


def payroll_dir() -> Path:
    return config.outbox_folder("payrolls")


def validate_payroll(cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str) -> dict[str, Any]:
    cycle = code_of(options, "cycle")
    plan = plans.require(cur, options["plan"]).plan if options.get("plan") else None
    cur.execute("SELECT array_agg(DISTINCT currency) FROM ledger.bills WHERE cycle_code = %s"
                " AND (%s::text IS NULL OR plan_code = %s)", (cycle, plan and plan.code, plan and plan.code))
    currencies = cur.fetchone()[0]
    if not currencies:
        raise RequestError(f"no bills in cycle {cycle}" + (f" of plan {plan.code}" if plan else "")
                           + ": run payment_cycle first")
    if len(currencies) > 1:
        raise RequestError(f"cycle {cycle}'s bills are in several currencies ({', '.join(sorted(currencies))}): "
                           f"choose a plan")
    unpaid_from = _earlier_payroll(cur, options.get("include_unpaid_from"))
    condition = _criteria(options.get("criteria"), plan)
    name = f"PAYROLL-{cycle}-{plan.code if plan else 'ALL'}-{request_id}"
    _select_bills(cur, request_id, cycle, plan, condition, unpaid_from)
    if cur.rowcount == 0:
        of_plan = f" of plan {plan.code}" if plan else ""
        failed = f", and none failed in {unpaid_from}" if unpaid_from else ""
        chosen = " among those the criteria select" if options.get("criteria") else ""
        raise RequestError(f"no bills to pay: none of cycle {cycle}'s bills{of_plan} is DUE outside a payroll"
                           f"{failed}{chosen}")
    return {"payroll": name, "cycle": cycle, "plan": plan.code if plan else None, "currency": currencies[0],
            "payment_point": _payment_point(options.get("payment_point")), "criteria": options.get("criteria") or None,
            "include_unpaid_from": unpaid_from, "bills_selected": cur.rowcount}


def _payment_point(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_PAYMENT_POINT or not value.strip().isprintable():
        raise RequestError(f"payment_point: a name of at most {MAX_PAYMENT_POINT} printable characters")
    return value.strip()


def approved_payroll(cur: psycopg2.extensions.cursor, name: str) -> tuple[int, str] | None:
    """(id, latest status) of the approved payroll with this name, or None."""
    cur.execute("SELECT p.payroll_id, (SELECT e.status FROM ledger.payroll_events e WHERE e.payroll_id ="
                " p.payroll_id ORDER BY e.commit_id DESC LIMIT 1) FROM ledger.payrolls p WHERE p.payroll_name = %s",
                (name,))
    found = cur.fetchone()
    return (int(found[0]), found[1]) if found else None


def payrolls_to_reconcile(cur: psycopg2.extensions.cursor) -> list[tuple[str, str]]:
    """(name, label) of every approved payroll not yet reconciled in full, newest first."""
    cur.execute("SELECT p.payroll_name,"
                " p.payroll_name || ' (' || p.cycle_code || ', ' || coalesce(p.plan_code, 'all plans') || ')'"
                " FROM ledger.payrolls p WHERE (SELECT e.status FROM ledger.payroll_events e"
                " WHERE e.payroll_id = p.payroll_id ORDER BY e.commit_id DESC LIMIT 1) = 'APPROVED_FOR_PAYMENT'"
                " ORDER BY p.payroll_id DESC")
    return [(name, label) for name, label in cur.fetchall()]


def _earlier_payroll(cur: psycopg2.extensions.cursor, name: Any) -> str | None:
    if name in (None, ""):
        return None
    if approved_payroll(cur, str(name).strip()) is None:
        raise RequestError(f"include_unpaid_from: no approved payroll named {str(name)[:60]!r}")
    return str(name).strip()


_ANY = sql.SQL("TRUE")


def _criteria(criteria: Any, plan: plans.Plan | None) -> sql.Composable:
    if not criteria:
        return _ANY
    if plan is None:
        raise RequestError("criteria name a plan's fields: give the plan too")
    return plans.request_condition(criteria, plans.beneficiary_fields(plan))


def _select_bills(cur: psycopg2.extensions.cursor, request_id: int, cycle: str, plan: plans.Plan | None,
                  condition: sql.Composable, unpaid_from: str | None) -> None:
    """The cycle's DUE bills in no payroll, and the FAILED bills whose latest payroll is `unpaid_from`."""
    # The beneficiaries' fields are joined only when criteria name them.
    rows = (sql.SQL("payments.bills bl JOIN {} ON b.beneficiary_id = bl.beneficiary_id").format(
        plans.beneficiary_rows(plan.type)) if plan and condition is not _ANY else sql.SQL("payments.bills bl"))
    cur.execute(sql.SQL(
        "INSERT INTO intake.request_selection (request_id, bill_id, beneficiary_id)"
        " SELECT {request}, bl.bill_id, bl.beneficiary_id FROM {rows}"
        " WHERE ((bl.cycle_code = {cycle} AND bl.status = 'DUE' AND bl.payroll_id IS NULL)"
        "        OR (bl.status = 'FAILED' AND bl.payroll_name = {unpaid_from}))"
        " AND {plan_matches} AND {condition}"
    ).format(request=sql.Literal(request_id), rows=rows, cycle=sql.Literal(cycle),
             unpaid_from=sql.Literal(unpaid_from),
             plan_matches=sql.SQL("bl.plan_code = {}").format(sql.Literal(plan.code)) if plan else sql.SQL("TRUE"),
             condition=condition))


def summarise_payroll(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(
        f"SELECT count(*) FILTER (WHERE to_pay), coalesce(sum(amount) FILTER (WHERE to_pay), 0),"
        f" count(*) FILTER (WHERE to_pay AND moved_from IS NOT NULL),"
        f" count(*) FILTER (WHERE NOT to_pay AND paid_already IS NOT TRUE), count(*) FILTER (WHERE paid_already),"
        f" min(currency)"
        f" FROM {proposal.table} WHERE request_id = %s", (request_id,))
    bills, total, moved, pending, paid_already, currency = cur.fetchone()
    cur.execute(f"SELECT plan_code, count(*) FROM {proposal.table} WHERE request_id = %s AND to_pay GROUP BY 1"
                f" ORDER BY 1",
                (request_id,))
    return {"bills": bills, "total": money(total, currency), "moved_from_earlier_payroll": moved,
            "held_by_another_payroll_waiting_for_approval": pending,
            "recipient_paid_in_this_cycle_already": paid_already, "bills_by_plan": dict(cur.fetchall())}


def commit_payroll(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """The payroll, its bills and the moved bills' release to the ledger, then its file to the outbox."""
    request_id = proposal.key
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.payroll'))")  # one payroll commit at a time
    # The ledger decides, not the derived tables the selection read (they lag until the next publish):
    # each bill is still where the proposal saw it, and a bill moving on FAILED in the payroll it leaves.
    cur.execute(
        f"SELECT count(*) FROM {proposal.table} p WHERE p.request_id = %s AND p.to_pay AND (p.moved_from_id IS"
        f" DISTINCT FROM"
        f" (SELECT max(pb.payroll_id) FROM ledger.payroll_bills pb WHERE pb.bill_id = p.bill_id)"
        f" OR (p.moved_from_id IS NOT NULL AND 'FAILED' IS DISTINCT FROM (SELECT e.status FROM ledger.bill_events e"
        f" WHERE e.bill_id = p.bill_id AND e.status IN ('DUE', 'PAID', 'FAILED') ORDER BY e.commit_id DESC LIMIT 1)))",
        (request_id,))
    if taken := cur.fetchone()[0]:
        raise CommitConflict(f"{taken} of these bills were taken by another payroll, or are not failed in the payroll "
                             f"they would leave; ask for the payroll again")
    # The few cancelled bills against the payroll's (a merge of duplicate records cancels a record's unpaid bills).
    cur.execute(f"SELECT count(*) FROM {proposal.table} p JOIN ledger.cancelled_bills() AS cancelled USING (bill_id)"
                f" WHERE p.request_id = %s AND p.to_pay", (request_id,))
    if cancelled := cur.fetchone()[0]:
        raise CommitConflict(f"{cancelled} of these bills were cancelled since the proposal (their payee was merged "
                             f"into another record as a duplicate); ask for the payroll again")
    cur.execute(f"SELECT count(*) FROM {proposal.table} WHERE request_id = %s AND to_pay", (request_id,))
    if cur.fetchone()[0] == 0:
        raise CommitConflict("nothing to pay: every bill selected is held by a payroll waiting for approval, or "
                             "pays someone another bill of its cycle paid already")
    cur.execute("INSERT INTO ledger.payrolls (payroll_name, cycle_code, plan_code, payment_point, criteria,"
                " include_unpaid_from, request_id, commit_id)"
                " SELECT document->>'payroll', document->>'cycle', document->>'plan', document->>'payment_point',"
                " document->'criteria', document->>'include_unpaid_from', request_id, %s"
                " FROM intake.requests WHERE request_id = %s RETURNING payroll_id, payroll_name",
                (commit_id, request_id))
    payroll_id, name = cur.fetchone()
    # In bill order: the two indexes that hold a bill id are then filled page after page instead of at a
    # random page per line (1,000,000 lines into empty indexes: 3.6 s instead of 8.7 s).
    cur.execute(f"INSERT INTO ledger.payroll_bills (payroll_id, bill_id, amount, recipient_id, commit_id)"
                f" SELECT %s, bill_id, amount, recipient_id, %s FROM {proposal.table} WHERE request_id = %s AND to_pay"
                f" ORDER BY bill_id",
                (payroll_id, commit_id, request_id))
    bills = cur.rowcount
    _refuse_recipients_moved_on(cur, payroll_id)
    _refuse_paying_anyone_twice(cur, payroll_id)
    cur.execute("INSERT INTO ledger.payroll_open_bills (payroll_id, commit_id, open_bills) VALUES (%s, %s, %s)",
                (payroll_id, commit_id, bills))
    cur.execute(f"INSERT INTO ledger.bill_events (bill_id, status, payroll_id, reason, commit_id)"
                f" SELECT bill_id, 'DUE', %s, 'unpaid in ' || moved_from || ', moved to ' || %s, %s FROM"
                f" {proposal.table}"
                f" WHERE request_id = %s AND to_pay AND moved_from IS NOT NULL",
                (payroll_id, name, commit_id, request_id))
    cur.execute("INSERT INTO ledger.payroll_events (payroll_id, status, commit_id)"
                " VALUES (%s, 'APPROVED_FOR_PAYMENT', %s)", (payroll_id, commit_id))
    publish.refresh_statistics(cur)
    write_payroll_file(cur, payroll_id, name, commit_id)
    return bills


def _refuse_recipients_moved_on(cur: psycopg2.extensions.cursor, payroll_id: int) -> None:
    """Each bill is paid to the recipient the checker approved, and that is whom the ledger says it pays now
    (ledger.bill_payees, migrations 028 and 030; the proposal read the published state): a merge or an unmerge of
    duplicate records, or a household's new primary recipient, since the proposal may have given it another payee.
    The lines just appended are analyzed first: the planner must know them to join them."""
    publish.refresh_statistics(cur)
    cur.execute("SELECT count(*) FILTER (WHERE nobody), (array_agg(bill_code ORDER BY bill_number)"
                "  FILTER (WHERE nobody))[1:5],"
                " count(*) FILTER (WHERE moved), (array_agg(bill_code ORDER BY bill_number) FILTER (WHERE moved))[1:5]"
                " FROM (SELECT bl.bill_code, bl.bill_number, pb.recipient_id IS NULL AS nobody,"
                "       pb.recipient_id IS DISTINCT FROM bl.payee_id AS moved"
                "       FROM ledger.payroll_bills pb JOIN ledger.bill_payees bl ON bl.bill_id = pb.bill_id"
                "       WHERE pb.payroll_id = %s) AS line", (payroll_id,))
    nobody, nobody_first, moved, moved_first = cur.fetchone()
    if nobody:
        raise CommitConflict(f"{nobody} of these bills have nobody to pay (a household's bill whose household has "
                             f"neither a primary recipient nor a head): bill {', '.join(nobody_first)}"
                             f"{', ...' if nobody > len(nobody_first) else ''}; name one, or leave those bills out")
    if moved:
        raise CommitConflict(f"{moved} of these bills pay someone else since the proposal (records merged or unmerged "
                             f"as duplicates, or a household's primary recipient changed): bill "
                             f"{', '.join(moved_first)}{', ...' if moved > len(moved_first) else ''}; ask for the "
                             f"payroll again")


def _refuse_paying_anyone_twice(cur: psycopg2.extensions.cursor, payroll_id: int) -> None:
    """No one is paid twice in a cycle of a plan: another bill of the cycle, paid or out for payment, may count, now,
    for a recipient of this payroll (ledger.bill_recipients) — in a household plan, a person who moved to another
    household, or a household's recipient merged as a duplicate, since the proposal (published or not). The
    proposal left out those the published state showed. Read only for the bills a payroll paid to one of the
    recipients or to a record merged into one, by index; and only for a household plan's second payroll of a cycle
    or later (another payroll of the cycle for the plan, or for all plans; a person's own bills: a merge cancels one
    of two, or waits for the payroll's reconciliation). A failed bill moved into a payroll of a later cycle is not
    judged here (the proposal's rule is)."""
    cur.execute("SELECT EXISTS (SELECT FROM ledger.payrolls other JOIN ledger.payrolls this"
                "               ON this.payroll_id = %(payroll)s AND other.cycle_code = this.cycle_code"
                "               AND coalesce(other.plan_code = this.plan_code, true)"
                "               WHERE other.payroll_id <> this.payroll_id)"
                " AND EXISTS (SELECT FROM ledger.payroll_bills pb JOIN ledger.bills b ON b.bill_id = pb.bill_id"
                "             WHERE pb.payroll_id = %(payroll)s AND b.household_code IS NOT NULL)",
                {"payroll": payroll_id})
    if not cur.fetchone()[0]:
        return
    cur.execute(_PAID_BY_ANOTHER_BILL, {"payroll": payroll_id})
    twice, first = cur.fetchone()
    if twice:
        raise CommitConflict(f"{twice} of the recipients of this payroll are paid by another bill of the cycle already "
                             f"(people moved to another household, or merged as duplicates, since the proposal): "
                             f"individual {', '.join(first)}{', ...' if twice > len(first) else ''}; ask for the "
                             f"payroll again")


_PAID_BY_ANOTHER_BILL = """
WITH lines AS MATERIALIZED (
    SELECT pb.bill_id, pb.recipient_id, b.cycle_code, b.plan_code
    FROM ledger.payroll_bills pb JOIN ledger.bills b ON b.bill_id = pb.bill_id
    WHERE pb.payroll_id = %(payroll)s AND pb.recipient_id IS NOT NULL
),
people AS MATERIALIZED (
    SELECT recipient_id AS individual_id FROM lines
    UNION
    SELECT merged.individual_id FROM ledger.merged_records() AS merged
    WHERE merged.survivor_id IN (SELECT recipient_id FROM lines)
),
others AS MATERIALIZED (
    SELECT DISTINCT pb.bill_id FROM ledger.payroll_bills pb JOIN ledger.bills b ON b.bill_id = pb.bill_id
    WHERE pb.payroll_id <> %(payroll)s AND pb.recipient_id IN (SELECT individual_id FROM people)
      AND (b.cycle_code, b.plan_code) IN (SELECT cycle_code, plan_code FROM lines)
)
SELECT count(DISTINCT lines.recipient_id), (array_agg(DISTINCT lines.recipient_id::text))[1:5]
FROM others
CROSS JOIN LATERAL (
    SELECT r.recipient_id, r.cycle_code, r.plan_code FROM ledger.bill_recipients r
    WHERE r.bill_id = others.bill_id AND NOT r.cancelled
) AS paid
JOIN lines
  ON lines.recipient_id = paid.recipient_id AND lines.cycle_code = paid.cycle_code
 AND lines.plan_code = paid.plan_code AND lines.bill_id <> others.bill_id
"""


def write_payroll_file(cur: psycopg2.extensions.cursor, payroll_id: int, name: str, commit_id: int) -> Path:
    """`<outbox>/payrolls/<name>.csv.partial` streamed from the ledger, its sha256 recorded with the payroll.

    The file gets its final name only after the commit (`publish_payroll_file`): a payroll file in
    the outbox always has its payroll in the ledger.
    """
    partial = _partial(f"{name}.csv")
    rows = _copy_payroll(cur, payroll_id, partial)
    digest, _size = checksum(partial)
    cur.execute("SELECT coalesce(sum(amount), 0), count(*) FROM ledger.payroll_bills WHERE payroll_id = %s",
                (payroll_id,))
    total, count = cur.fetchone()
    if count != rows:
        raise CommitConflict(f"payroll {name}: {count} bills but {rows} rows written (a recipient is missing)")
    cur.execute("INSERT INTO ledger.payroll_exports (payroll_id, file_name, sha256, row_count, control_total,"
                " commit_id) VALUES (%s, %s, %s, %s, %s, %s)", (payroll_id, f"{name}.csv", digest, rows, total,
                                                                commit_id))
    return partial


def _partial(file_name: str) -> Path:
    return payroll_dir() / f"{file_name}.partial"


def _copy_payroll(cur: psycopg2.extensions.cursor, payroll_id: int, target: Path) -> int:
    """The payroll's rows streamed into `target` with COPY; the number of rows."""
    exported = zip((*PAYROLL_COLUMNS, *IDENTIFIER_COLUMNS), _EXPORTED, strict=True)
    columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(file_store.spreadsheet_safe(sql.SQL(expression), _TYPES.get(column, "string")),
                                   sql.Identifier(column))
        for column, expression in exported)
    with file_store.replaced_text(target) as handle:  # personal data: like every export, not world-readable
        query = sql.SQL("COPY (SELECT {} FROM {} ORDER BY bl.bill_number) TO STDOUT WITH (FORMAT csv, HEADER true)")
        recipients = sql.SQL(_RECIPIENTS).format(payroll=sql.Literal(payroll_id))
        cur.copy_expert(query.format(columns, recipients).as_string(cur), handle)
    return cur.rowcount


def publish_payroll_file(request_id: int, *, wait: bool = True) -> Path | None:
    """Once committed: the file under its final name, and `<name>.control.json` (rows, total, sha256) beside it; its
    path.

    The approved file is made ready as `<name>.csv.partial` (the commit's, or written again from the ledger and kept
    only if byte for byte the approved one), then recorded as published (ledger.payroll_files_published, migration
    031), and only then given its final name. So a file the provider can see has always been recorded, and a payroll
    recorded as published is never written again from the ledger (its file may since have gone to the provider): a
    `.partial` it left is only renamed. Safe to run again, and at the same time (a retried commit step,
    `finish_payroll_files`). With `wait=False`, a payroll whose file another process is handling is left to it (None).
    """
    with db.session_lock(f"benefitflow.payroll_file:{request_id}", wait=wait) as locked:
        if not locked:
            return None
        with db.transaction() as cur:
            cur.execute("SELECT p.payroll_id, p.payroll_name, e.file_name, e.row_count, e.control_total, e.sha256,"
                        " f.payroll_id IS NOT NULL FROM ledger.payrolls p JOIN ledger.payroll_exports e USING"
                        " (payroll_id) LEFT JOIN ledger.payroll_files_published f USING (payroll_id)"
                        " WHERE p.request_id = %s", (request_id,))
            payroll_id, name, file_name, rows, total, digest, published = cur.fetchone()
            path = payroll_dir() / file_name
            if not published:
                _make_ready(cur, payroll_id, name, path, digest)
                cur.execute("INSERT INTO ledger.payroll_files_published (payroll_id, sha256) VALUES (%s, %s)",
                            (payroll_id, digest))
        partial = _partial(file_name)
        if partial.exists():
            os.replace(partial, path)
        if path.exists() and not control_file(path).exists():
            control = {"payroll": name, "file": file_name, "rows": rows, "control_total": f"{total:.2f}",
                       "sha256": digest}
            with file_store.replaced_text(control_file(path)) as handle:  # last: the file is ready
                handle.write(json.dumps(control, indent=2) + "\n")
    return path


def _make_ready(cur: psycopg2.extensions.cursor, payroll_id: int, name: str, path: Path, digest: str) -> None:
    """The approved file, checked: the commit's `.partial`, one already under its final name (put there before
    migration 031), or the file written again from the ledger."""
    partial = _partial(path.name)
    if not partial.exists() and not path.exists():
        _copy_payroll(cur, payroll_id, partial)
    ready = partial if partial.exists() else path
    if checksum(ready)[0] != digest:
        if ready == partial:
            partial.unlink()
            raise CommitConflict(f"payroll {name} is committed but its file {path.name} is missing, and written "
                                 f"again from the ledger it is not the approved file (sha256 {digest[:12]}…): its "
                                 f"recipients' records changed since (a correction or a merge), or it is older "
                                 f"than recorded recipients (migration 029); restore {path.name} from a backup")
        raise CommitConflict(f"payroll file {path.name} differs from the approved file (sha256 {digest[:12]}…): "
                             f"it was changed in the outbox; restore it from a backup")


def control_file(payroll_file: Path) -> Path:
    return payroll_file.with_suffix(".control.json")


# A commit writes its payroll's file and commits within minutes: a `.partial` file (or the temporary file one is
# written through) this old, of no committed payroll, belongs to no commit still running. Its commit failed or its
# process died; it holds personal data, and goes.
ABANDONED_PARTIAL_SECONDS = 3600
ABANDONED_PATTERNS = ("*.csv.partial", ".*.csv.partial.*.new")


def finish_payroll_files() -> list[str]:
    """Every committed payroll's file published; no abandoned `.partial` file left. What it did, a line each.

    A commit's process can die between its transaction and the file's rename (killed, out of memory, a full disk):
    its retry finishes the file, but a run that failed for good would leave a payroll without its file. Each payments
    workflow runs this before taking anything in, and `make up` at start. It never fails: a payroll whose file
    another process is handling is left to it, and one that cannot be finished (its recipients changed since, the
    outbox unwritable) is reported, so the next payroll is not held up by it.
    """
    left = {path.name.removesuffix(".partial"): path for path in payroll_dir().glob("*.csv.partial")}
    with db.transaction() as cur:
        # Never published; or published with its `.partial` not yet renamed (the process died in between).
        cur.execute("SELECT p.request_id, e.file_name FROM ledger.payrolls p JOIN ledger.payroll_exports e"
                    " USING (payroll_id) LEFT JOIN ledger.payroll_files_published f USING (payroll_id)"
                    " WHERE f.payroll_id IS NULL OR e.file_name = ANY (%s) ORDER BY p.payroll_id", (list(left),))
        unfinished = cur.fetchall()
        cur.execute("SELECT file_name FROM ledger.payroll_exports WHERE file_name = ANY (%s)", (list(left),))
        committed = {file_name for (file_name,) in cur.fetchall()}
    done = []
    for request_id, file_name in unfinished:
        try:
            if publish_payroll_file(request_id, wait=False) is not None:
                done.append(f"finished the file of committed payroll {file_name}")
        except Exception as exc:  # reported: the run that asked goes on
            done.append(f"could not finish {file_name}: {exc}")
    abandoned_before = time.time() - ABANDONED_PARTIAL_SECONDS
    for pattern in ABANDONED_PATTERNS:
        for partial in payroll_dir().glob(pattern):
            if any(f".{name}.partial." in partial.name or partial.name == f"{name}.partial" for name in committed):
                continue  # a committed payroll's: finished above, or by the process handling it now
            try:
                if partial.stat().st_mtime < abandoned_before:
                    partial.unlink()
                    done.append(f"removed {partial.name}, left by a payroll commit that did not go through")
            except FileNotFoundError:  # another process finished or removed it meanwhile
                continue
    return done


def discard_payroll_file(request_id: int) -> None:
    """A commit that failed leaves no file behind (it would hold personal data for no payroll).

    A payroll the ledger holds keeps its file, whatever failed after its commit.
    """
    with db.transaction() as cur:
        cur.execute("SELECT document->>'payroll', EXISTS (SELECT FROM ledger.payrolls p WHERE p.request_id = %s)"
                    " FROM intake.requests WHERE request_id = %s", (request_id, request_id))
        found = cur.fetchone()
    if found and found[0] and not found[1]:
        _partial(f"{found[0]}.csv").unlink(missing_ok=True)


# The file's rows: each bill's recipient as the payroll recorded it (migration 029), so a file written again from
# the ledger pays the same people.
_RECIPIENTS = """
ledger.payroll_bills pb
JOIN ledger.bills bl ON bl.bill_id = pb.bill_id
JOIN registry.individuals i ON i.individual_id = pb.recipient_id
JOIN ledger.payrolls p ON p.payroll_id = pb.payroll_id
WHERE pb.payroll_id = {payroll}
"""
_EXPORTED = ("p.payroll_name", "'APPROVED_FOR_PAYMENT'", "i.first_name", "i.last_name", "i.dob", "bl.bill_code",
             "'DUE'", "to_char(pb.amount, 'FM999999999990.00')", "'CASH'", "NULL::text", "NULL::text",
             "bl.currency", "i.individual_id", "i.national_id", "bl.household_code", "bl.beneficiary_id",
             "bl.plan_code", "bl.cycle_code")
# Columns that are not text (the rest are written spreadsheet-safe): the amount stays a number.
_TYPES = {"Amount": "number", "Date of Birth": "date", "Individual Id": "uuid", "Beneficiary Id": "uuid"}


WORKFLOW = Workflow(
    dag_id="payroll",
    intake=FormIntake(params={
        "cycle": Param("", type="string", minLength=1, maxLength=30, description="The cycle's code"),
        "plan": Param("", type="string", maxLength=30, description="Only this plan's bills (empty: every plan)"),
        "payment_point": Param("", type="string", maxLength=MAX_PAYMENT_POINT,
                               description="The provider or location paying (a name, kept with the payroll)"),
        "criteria": Param({}, type="object",
                          description="Only the bills of beneficiaries matching this filter (needs `plan`)"),
        "include_unpaid_from": Param("", type="string", maxLength=80,
                                     description="An earlier payroll's name: its unpaid (FAILED) bills move into "
                                                 "this one"),
    }, describe=lambda options: f"payroll of cycle {options.get('cycle')}", plan_of=plan_parameter),
    validate=FormCheck(check=validate_payroll),
    propose=Proposal(summarise=summarise_payroll,
                     shown=("payroll_name", "to_pay", "moved_from")),
    approve=Approval(group="PaymentCheckers"),
    commit=Commit(append=commit_payroll,
                  writes=("bill_events", "payroll_bills", "payroll_events", "payroll_exports", "payroll_open_bills",
                          "payrolls"),
                  after=publish_payroll_file, after_failure=discard_payroll_file),
    publish=Publish(asset="benefitflow://payments/payrolls"),
    tags=("payments",),
    recover=finish_payroll_files,
    doc_md="""
### Combine a cycle's DUE bills into a payroll for a payment provider

**Parameters** — `cycle` (code); optional `plan`, `payment_point` (the provider or location,
kept with the payroll), `criteria` (a filter on the plan's beneficiaries; needs `plan`),
`include_unpaid_from` (an earlier payroll's name: its FAILED bills move into this one).

A bill is in at most one open payroll: bills another payroll already holds, or that a payroll
waiting for approval holds, are left out (the checker sees how many); held bills wait for their
own release. A member of `PaymentCheckers` other than you approves (PENDING_APPROVAL →
APPROVED_FOR_PAYMENT); a rejection leaves the bills free. On approval the payroll file is
written to `data/outbox/payrolls/<payroll>.csv` (openIMIS columns `Payroll Name, Payroll Status,
First Name, Last Name, Date of Birth, Code, Status, Amount, Type, Receipt, Paid`, then the
recipient's identifiers) with `<payroll>.control.json` (rows, control total, sha256); the sha256
is recorded in the ledger. The provider fills `Receipt` and `Paid` and it comes back through
`payroll_reconciliation`.
""",
)
