"""The `grievances_import` workflow: grievance tickets from CSV, linked to the person who reported them.

Each row names its reporter by `individual_id` or `beneficiary_id` (or both, when they agree);
a beneficiary of a GROUP plan is linked to the head of its household. The ticket is RECEIVED,
due on the day received plus its category's resolution time (categories.yaml).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2.extensions
import yaml
from psycopg2 import sql

from benefitflow.core import columns
from benefitflow.registry import checks as registry_checks
from benefitflow.workflows import row_checks, suites
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
from benefitflow.workflows.inputs import FileSpec, checked_table, index_by_row
from benefitflow.workflows.proposal_digest import ProposalRef

if TYPE_CHECKING:  # GX is imported by the tasks that validate, not when the DAG is parsed
    from great_expectations.core import ExpectationSuite

KIND = "grievances"
CATEGORIES_FILE = Path(__file__).with_name("categories.yaml")
CHANNELS = ("PHONE", "SMS", "EMAIL", "WEB", "IN_PERSON", "LETTER", "COMMUNITY_MEETING", "OTHER")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
CHECKS = row_checks.beside(__file__)

# The file's columns as properties, so the registry's typing and GX expectations serve them too.
PROPERTIES = [
    columns.Property("title", "string", {"minLength": 1, "maxLength": 200}, True),
    columns.Property("description", "string", {"maxLength": 4000}, False),
    columns.Property("incident_date", "date", {}, False),
    columns.Property("received_on", "date", {}, False),
]
SPEC = FileSpec(kind=KIND, required_columns=("title", "category", "channel"),
                optional_columns=("individual_id", "beneficiary_id", "description", "priority", "incident_date",
                                  "received_on"),
                aliases=(("reporter_id", "individual_id"),))
TEXT_COLUMNS = ["individual_id", "beneficiary_id", "title", "description", "category", "channel", "priority",
                "incident_date", "received_on"]


@cache
def categories() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(CATEGORIES_FILE.read_text())


def prepare(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> str:
    """Trimmed text, typed dates, ids, codes in capitals, and the category's resolution time."""
    resolution_days = sql.SQL("CASE upper(p.category) {} END").format(sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(code), sql.Literal(int(entry["resolution_days"])))
        for code, entry in categories().items()))
    target = checked_table(upload)
    cur.execute(columns.typed_table_sql(
        PROPERTIES, [], upload["header"], upload["staged_table"], target, text_columns=TEXT_COLUMNS,
        derived=[sql.SQL("{} AS person_id").format(columns.as_uuid(sql.SQL("p.individual_id"))),
                 sql.SQL("{} AS reporting_beneficiary_id").format(columns.as_uuid(sql.SQL("p.beneficiary_id"))),
                 sql.SQL("upper(p.category) AS category_code"),
                 sql.SQL("upper(p.channel) AS channel_code"),
                 sql.SQL("coalesce(upper(p.priority), 'NORMAL') AS priority_code"),
                 sql.SQL("{} AS resolution_days").format(resolution_days),
                 sql.SQL("coalesce(p.received_on__date, current_date) AS received_date")],
    ))
    index_by_row(cur, target)
    return target


def suite_for(upload: dict[str, Any], options: Options) -> ExpectationSuite:
    header = upload["header"]
    expectations: list[dict[str, Any]] = []
    for prop in PROPERTIES:
        if prop.name in header:
            expectations += columns.property_expectations(prop, required=prop.required)
    expectations += [
        columns.expectation("in_set", "category_code", f"must be one of {', '.join(categories())}",
                           report="category", value_set=list(categories())),
        columns.expectation("in_set", "channel_code", f"must be one of {', '.join(CHANNELS)}",
                           report="channel", value_set=list(CHANNELS)),
        columns.expectation("in_set", "priority_code", f"must be one of {', '.join(PRIORITIES)}",
                           report="priority", value_set=list(PRIORITIES)),
    ]
    for column in ("individual_id", "beneficiary_id"):
        if column in header:
            expectations.append(columns.expectation("match_regex", column, "not a valid id",
                                                    regex=columns.UUID_PATTERN))
    return suites.suite_from_document({"name": "grievances", "expectations": expectations})


def check(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> None:
    """The reporter must be a registered person or a beneficiary (the two agreeing when both are given)."""
    parts = {"upload": sql.Literal(int(upload["upload_id"])), "checked": sql.Identifier(checked_table(upload))}
    for query in (CHECKS["no_reporter"], registry_checks.CHECKS["unknown_person"], CHECKS["unknown_beneficiary"],
                  CHECKS["household_without_head"], CHECKS["reporters_disagree"], CHECKS["incident_after_receipt"]):
        row_checks.run(cur, query, **parts)


def summarise(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    upload_id = proposal.key
    cur.execute(f"SELECT count(*), count(DISTINCT individual_id), min(due_on), max(due_on) FROM {proposal.table}"
                f" WHERE upload_id = %s", (upload_id,))
    tickets, people, first_due, last_due = cur.fetchone()
    cur.execute(f"SELECT category, count(*) FROM {proposal.table} WHERE upload_id = %s GROUP BY 1 ORDER BY"
                f" 1", (upload_id,))
    by_category = dict(cur.fetchall())
    cur.execute(f"SELECT priority, count(*) FROM {proposal.table} WHERE upload_id = %s GROUP BY 1 ORDER BY"
                f" 1", (upload_id,))
    return {"grievances_to_record": tickets, "people_reporting": people, "by_category": by_category,
            "by_priority": dict(cur.fetchall()),
            "due_between": None if first_due is None else f"{first_due} and {last_due}"}


def commit(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    upload_id = proposal.key
    cur.execute(
        f"INSERT INTO ledger.grievances (grievance_id, individual_id, beneficiary_id, title, description, category,"
        f" channel, priority, incident_date, received_on, due_on, commit_id, upload_id, row_number)"
        f" SELECT grievance_id, individual_id, beneficiary_id, title, description, category, channel, priority,"
        f" incident_date, received_on, due_on, %s, upload_id, row_number FROM {proposal.table} WHERE upload_id = %s"
        f" ORDER BY row_number", (commit_id, upload_id))
    recorded = cur.rowcount
    cur.execute(
        f"INSERT INTO ledger.grievance_events (grievance_id, version, status, comment, commit_id)"
        f" SELECT grievance_id, 1, 'RECEIVED', 'received by ' || channel, %s FROM {proposal.table} WHERE"
        f" upload_id = %s",
        (commit_id, upload_id))
    return recorded


WORKFLOW = Workflow(
    dag_id="grievances_import",
    intake=FileIntake(spec=SPEC),
    validate=FileChecks(suite=suite_for, prepare=prepare, check=check),
    propose=Proposal(summarise=summarise,
                     shown=("row_number", "channel", "priority", "received_on", "due_on")),
    approve=Approval(group="GrievanceCheckers"),
    commit=Commit(append=commit, writes=("grievance_events", "grievances")),
    publish=Publish(asset="benefitflow://grievances"),
    tags=("grievances",),
    doc_md=f"""
### Import grievance tickets from CSV

**Parameters**
- `file` — a CSV in the inbox, UTF-8 (with or without BOM), comma-separated.
- `on_invalid_rows` — `reject_file` (default) or `skip_invalid_rows`.

**Columns** — `title`, `category`, `channel` (required); the reporter by `individual_id`
(or `reporter_id`) and/or `beneficiary_id` (a GROUP plan's beneficiary is linked to the head of
its household); `description`, `priority` ({', '.join(PRIORITIES)}; default NORMAL),
`incident_date` and `received_on` (YYYY-MM-DD, not in the future; `received_on` defaults to
today).

**Categories** (days to resolve, set in `plugins/benefitflow/grievances/categories.yaml`):
{', '.join(f"{code} ({entry['resolution_days']})" for code, entry in categories().items())}.
The due date is the day received plus the category's days. **Channels**: {', '.join(CHANNELS)}.

Every ticket starts RECEIVED; change its status with `grievance_status`. Every failing row
is in the error report. A member of `GrievanceCheckers` other than you approves.
""",
)
