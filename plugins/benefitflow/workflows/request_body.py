"""What a checker reads in an approval request: one renderer for every workflow, grouped by meaning.

    What                        the operation's input: file or request, plan, cycle, the period in order, ...
    How many and how much       rows, people, bills, totals, smallest / median / largest, differences
    What is wrong or unusual    invalid rows by rule, likely duplicates, refusals, capacity, what is held
    The data                    the proposal's first rows, the error report, the original, the suite

A workflow's summary (its validate and propose steps) is a flat mapping: XCom keeps no key order, so the
order is this module's, the same for every workflow. The first rows show only the columns the workflow
allows (`Proposal.shown`: none that names, identifies or locates a person; the request is shown to more
people than the files are); every column is in the full proposal, the original and the error report,
which only the maker, the checkers and the operators may download.
The body's last line is the proposal's full digest, what the checker's answer is compared with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from benefitflow.core import config
from benefitflow.workflows import proposal_digest
from benefitflow.workflows.proposal_digest import ProposalRef

DIGEST_KEY = "proposal_digest"
# The body's last line names the full digest: what a checker's answer is compared with (the rest of
# the body holds file names and other text a maker chose, so only the last line is read).
FULL_DIGEST_LINE = re.compile(r"\*\*Proposal digest:\*\* `([0-9a-f]{64})`")

WHAT = ("request", "file", "upload_id", "request_id", "mode", "plan", "plan_type", "plan_version", "based_on_version",
        "cycle", "cycle_code", "period_start", "period_end", "due_between", "previous_cycle", "payroll",
        "payment_point", "include_unpaid_from", "criteria", "filter", "columns", "personal_columns", "status",
        "target_status", "reason", "currency", "transaction_limit", "max_beneficiaries")
COUNTED_FIRST = ("rows_in_file", "valid_rows", "rows", "rows_to_append", "rows_to_export", "bills", "total")
UNUSUAL_PREFIXES = ("invalid", "warnings", "likely_duplicate", "not_allowed", "over_", "held", "unknown",
                    "mismatched", "stale", "already_", "failed", "bills_left_open", "beneficiaries_left_as")
DATA = ("largest_bills", "full_proposal", "error_report", "original", "checked_with")
# Where a key names one end of a range: smallest before largest, start before end, the total before both.
ORDER_WORDS = {"total": 0, "min": 1, "smallest": 1, "start": 1, "median": 2, "max": 3, "largest": 3, "end": 3}
SECTIONS = ("What", "How many and how much", "What is wrong or unusual", "The data")
FIRST_ROWS = 5
CELL_CHARACTERS = 40
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")  # line breaks of any kind: a value stays on its line
MARKDOWN = re.compile(r"[\\`*_~\[\]<>|]")  # what could start a link, image, HTML, code, emphasis, strike or cell
# What GitHub-flavoured Markdown (Airflow's renderer) turns into a link by itself: a word joiner breaks it.
AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)(?=[^\s@]+\.)")


@dataclass(frozen=True)
class FirstRows:
    """The proposal's first rows as the request shows them, and the columns left out of it."""

    columns: tuple[str, ...]  # none: the workflow shows no row (Proposal.shown)
    rows: tuple[tuple[str, ...], ...]
    total: int
    key: int  # the upload or request the rows are keyed by


def render_body(operation: str, maker: str, summary: dict[str, Any], *, step: int = 1, needed: int = 1,
                approved_by: tuple[str, ...] = (), first_rows: FirstRows | None = None, dag_id: str = "") -> str:
    """Markdown the checker reads on the Required actions page."""
    lines = [f"**Operation:** {operation}  ", f"**Maker:** {maker} (cannot decide on this request)  "]
    if summary.get(DIGEST_KEY):
        lines.append(f"**Proposal:** `{proposal_digest.short(summary[DIGEST_KEY])}` (its digest: your approval "
                     "commits exactly these numbers; if anything changes, it commits nothing)  ")
    if needed > 1:
        earlier = f"; already approved by {', '.join(approved_by)}" if approved_by else ""
        lines.append(f"**Approval {step} of {needed}:** {needed} distinct checkers must approve{earlier}  ")
    shown = {key: value for key, value in summary.items()  # what is not there is not shown (no previous cycle)
             if key != DIGEST_KEY and value is not None and value != "" and not (isinstance(value, dict | list)
                                                                                 and not value)}
    if "upload_id" in shown and "original" not in shown:
        shown["original"] = config.upload_file_url(int(shown["upload_id"]), "original")
    if dag_id and first_rows is not None:
        shown["full_proposal"] = config.proposal_csv_url(dag_id, first_rows.key)
    for title, keys in zip(SECTIONS, _sections(shown), strict=True):
        table = _table(first_rows) if title == SECTIONS[-1] and first_rows is not None else []
        if keys or table:
            lines += ["", f"#### {title}", *(line for key in keys for line in _item(key, shown[key])), *table]
    if summary.get(DIGEST_KEY):
        lines += ["", f"**Proposal digest:** `{summary[DIGEST_KEY]}`"]
    return "\n".join(lines)


def digest_shown(body: str | None) -> str | None:
    """The full proposal digest a request's body showed (its last line), None if it showed none."""
    last = (body or "").rstrip().rsplit("\n", 1)[-1]
    found = FULL_DIGEST_LINE.fullmatch(last.strip())
    return found.group(1) if found else None


def section_of(key: str) -> int:
    if key in WHAT:
        return 0
    if key in DATA:
        return 3
    if key.startswith(UNUSUAL_PREFIXES):
        return 2
    return 1


def _sections(summary: dict[str, Any]) -> list[list[str]]:
    grouped: list[list[str]] = [[] for _ in SECTIONS]
    for key in summary:
        grouped[section_of(key)].append(key)
    return [sorted(keys, key=_place) for keys in grouped]


def _place(key: str) -> tuple[int, str, int]:
    """Listed keys in their listed order; the others by what they count, each range in its natural order."""
    for listed in (WHAT, COUNTED_FIRST, DATA):
        if key in listed:
            return (listed.index(key), "", 0)
    words = key.split("_")
    ranked = [word for word in words if word in ORDER_WORDS]
    base = "_".join(word for word in words if word not in ORDER_WORDS)
    return (len(WHAT), base, ORDER_WORDS[ranked[0]] if ranked else -1)


def _item(key: str, value: Any) -> Iterable[str]:
    label = key.replace("_", " ")
    shown = str if key in DATA else _text  # the platform's own links, as they are
    if isinstance(value, dict):
        yield f"- **{label}:**"
        yield from (f"  - {_text(inner)}: {shown(inner_value)}" for inner, inner_value in value.items())
    elif isinstance(value, list):
        yield f"- **{label}:**"
        yield from (f"  - {shown(item)}" for item in value)
    else:
        yield f"- **{label}:** {shown(value)}"


def _text(value: Any) -> str:
    """A value a maker may have chosen (a file name, a cell, a reason), as text that stays on its line and makes
    no link, image, HTML, code or table cell of its own."""
    text = "" if value is None else json.dumps(value) if isinstance(value, dict | list) else str(value)
    return AUTOLINK.sub("\u2060", MARKDOWN.sub(r"\\\g<0>", CONTROL.sub(" ", text)))


def _table(first_rows: FirstRows) -> list[str]:
    if not first_rows.total:
        return ["", "The proposal has no rows."]
    if not first_rows.columns:
        return ["", f"{first_rows.total:,} proposed rows: they are in the full proposal (personal data)."]
    lines = ["", f"The first {len(first_rows.rows)} of {first_rows.total:,} proposed rows (the columns that name no "
                 "one; every column is in the full proposal):", "",
             "| " + " | ".join(first_rows.columns) + " |", "|" + "---|" * len(first_rows.columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in first_rows.rows]


def first_rows(cur: psycopg2.extensions.cursor, proposal: ProposalRef, shown: tuple[str, ...],
               limit: int = FIRST_ROWS) -> FirstRows:
    """The proposal's first rows (in file order where it has one), of the columns its workflow shows."""
    table = sql.Identifier(*proposal.table.split("."))
    key = sql.Identifier(proposal.key_column)
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(table, key), (proposal.key,))
    total = int(cur.fetchone()[0])
    if not shown:
        return FirstRows(columns=(), rows=(), total=total, key=proposal.key)
    # A re-made request must read the same (approve compares it with the one shown): in file order, else by every
    # shown column, so that rows tied on all of them look alike whichever of them come first.
    order = (sql.Identifier("row_number") if "row_number" in shown
             else sql.SQL(", ").join(map(sql.Identifier, shown)))
    cur.execute(sql.SQL("SELECT {} FROM {} WHERE {} = %s ORDER BY {} LIMIT %s").format(
        sql.SQL(", ").join(map(sql.Identifier, shown)), table, key, order), (proposal.key, limit))
    return FirstRows(columns=shown, rows=tuple(tuple(map(_cell, row)) for row in cur.fetchall()), total=total,
                     key=proposal.key)


def _cell(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= CELL_CHARACTERS else text[:CELL_CHARACTERS - 1].rstrip("\\") + "…"
