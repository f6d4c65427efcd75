"""The `individuals_import` workflow: individuals and households from CSV into the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg2.extensions
from airflow.sdk import Param

from benefitflow.core.errors import CommitConflict
from benefitflow.registry import checks, schema
from benefitflow.workflows import suites
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
from benefitflow.workflows.intake import UPLOAD_MODES, mode_of
from benefitflow.workflows.proposal_digest import ProposalRef

if TYPE_CHECKING:  # GX is imported by the tasks that validate, not when the DAG is parsed
    from great_expectations.core import ExpectationSuite

KIND = "individuals"


def spec_for(options: Options) -> FileSpec:
    registry = schema.load()
    if mode_of(options) == "update":
        return FileSpec(kind=KIND, required_columns=(schema.ID_COLUMN,),
                        optional_columns=(*registry.properties, *schema.HOUSEHOLD_COLUMNS),
                        aliases=(("ID", schema.ID_COLUMN),))
    required = tuple(p.name for p in registry.properties.values() if p.required)
    optional = tuple(p.name for p in registry.properties.values() if not p.required) + schema.HOUSEHOLD_COLUMNS
    return FileSpec(kind=KIND, required_columns=required, optional_columns=optional)


def prepare(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> str:
    registry = schema.load()
    schema.record(cur, registry)
    target = checked_table(upload)
    cur.execute(schema.checked_table_sql(registry, upload["header"], upload["staged_table"], target))
    index_by_row(cur, target)
    return target


def suite_for(upload: dict[str, Any], options: Options) -> ExpectationSuite:
    document = schema.suite_document(schema.load(), upload["header"], mode_of(options))
    return suites.suite_from_document(document)


def check(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> None:
    checks.run_all(cur, int(upload["upload_id"]), checked_table(upload), mode=mode_of(options),
                   header=list(upload["header"]),
                   whole_households=options.get("on_invalid_rows") == "skip_invalid_rows")


def proposal_vars(upload: dict[str, Any], options: Options) -> dict[str, Any]:
    return {"mode": mode_of(options), "columns": list(upload["header"])}


def summarise(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    upload_id = proposal.key
    cur.execute(
        f"SELECT count(*) FILTER (WHERE action = 'create'), count(*) FILTER (WHERE action = 'update'),"
        f" count(DISTINCT household_code) FILTER (WHERE household_is_new),"
        f" count(DISTINCT household_code) FILTER (WHERE NOT household_is_new"
        f"                                        AND household_code IS DISTINCT FROM previous_household_code)"
        f" FROM {proposal.table} WHERE upload_id = %s",
        (upload_id,),
    )
    created, updated, new_households, extended = cur.fetchone()
    cur.execute(
        "SELECT count(DISTINCT row_number) FROM intake.row_errors"
        " WHERE upload_id = %s AND rule = 'likely_duplicate'", (upload_id,))
    likely = cur.fetchone()[0]
    # Which rows, and like what, without the names, dates and places (the request is read by more people than
    # the error report, which has them).
    cur.execute(
        "SELECT row_number, coalesce(substring(message FROM '^looks like row [0-9]+ of this file'),"
        " 'looks like a person already in the registry') FROM intake.row_errors"
        " WHERE upload_id = %s AND rule = 'likely_duplicate' ORDER BY row_number LIMIT 10", (upload_id,))
    examples = [f"row {row}: {like}" for row, like in cur.fetchall()]
    return {"individuals_to_create": created, "individuals_to_update": updated,
            "households_to_create": new_households, "households_to_extend": extended,
            "likely_duplicates": likely, "likely_duplicates_first": examples}


def commit(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Append the proposal: new households, then one new version per individual."""
    upload_id = proposal.key
    lock_registry(cur)
    _refuse_stale_updates(cur, proposal)
    refuse_taken_national_ids(cur, proposal)
    cur.execute(
        f"INSERT INTO ledger.households (household_code, commit_id)"
        f" SELECT DISTINCT household_code, %s FROM {proposal.table} WHERE upload_id = %s AND household_is_new"
        f" ON CONFLICT (household_code) DO NOTHING",
        (commit_id, upload_id),
    )
    cur.execute(
        f"INSERT INTO ledger.individual_versions (individual_id, version, commit_id, upload_id, row_number,"
        f" first_name, last_name, dob, sex, national_id, location_code, location_name, region,"
        f" household_code, role, recipient_type, attributes)"
        f" SELECT individual_id, version, %s, upload_id, row_number, first_name, last_name, dob, sex, national_id,"
        f" location_code, location_name, region, household_code, role, recipient_type, attributes"
        f" FROM {proposal.table} WHERE upload_id = %s",
        (commit_id, upload_id),
    )
    appended = cur.rowcount
    refuse_broken_households(cur, commit_id)
    return appended


def lock_registry(cur: psycopg2.extensions.cursor) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('benefitflow.registry'))")


def refuse_broken_households(cur: psycopg2.extensions.cursor, commit_id: int) -> None:
    """After this commit's individual versions are appended, under the registry lock: every household it
    changes still has one HEAD and one PRIMARY recipient, counting what other uploads committed since this
    one was validated (two uploads each adding a HEAD to one household: the second is refused). Raising
    rolls the commit's transaction back, the appended versions with it."""
    cur.execute(checks.HOUSEHOLDS_BROKEN_AT_COMMIT, {"commit_id": commit_id})
    if not (broken := cur.fetchall()):
        return
    described = "; ".join(
        f"household {code} would have {heads} HEAD{'s' * (heads != 1)} and {primaries} primary "
        f"recipient{'s' * (primaries != 1)} (rows of this upload: HEAD {head_rows or 'none'}, PRIMARY "
        f"{primary_rows or 'none'}; already registered: {registry_heads} HEAD, {registry_primaries} PRIMARY)"
        for code, heads, primaries, registry_heads, registry_primaries, head_rows, primary_rows, _ in broken)
    more = f" and {broken[0][-1] - len(broken)} more" if broken[0][-1] > len(broken) else ""
    raise CommitConflict(f"another upload changed these households since this one was validated: {described}{more};"
                         f" a household has one HEAD and one primary recipient; upload its rows again")


def _refuse_stale_updates(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> None:
    cur.execute(
        f"SELECT p.row_number, p.individual_id FROM {proposal.table} p"
        f" WHERE p.upload_id = %s AND p.action = 'update' AND p.based_on_version <>"
        f" (SELECT max(v.version) FROM ledger.individual_versions v WHERE v.individual_id = p.individual_id)"
        f" ORDER BY p.row_number LIMIT 5",
        (proposal.key,),
    )
    if stale := cur.fetchall():
        rows = ", ".join(f"row {row} (id {individual})" for row, individual in stale)
        raise CommitConflict(f"the registry changed after the proposal for {rows}; upload the changes again")


def refuse_taken_national_ids(cur: psycopg2.extensions.cursor, proposal: ProposalRef,
                              person: str = "individual_id") -> None:
    """A national id committed by another upload since this one was validated (`person`: the proposal's id column)."""
    cur.execute(
        f"WITH wanted AS (SELECT row_number, {person} AS individual_id, national_id FROM {proposal.table}"
        f"                WHERE upload_id = %s AND national_id IS NOT NULL),"
        f" holders AS (SELECT DISTINCT ON (v.individual_id) v.individual_id, v.national_id, v.merged_into"
        f"             FROM ledger.individual_versions v"
        f"             WHERE v.individual_id IN (SELECT individual_id FROM ledger.individual_versions"
        f"                                       WHERE national_id IN (SELECT national_id FROM wanted))"
        f"             ORDER BY v.individual_id, v.version DESC)"
        f" SELECT w.row_number, w.national_id FROM wanted w"
        # a survivor may take the national id of a record merged into it
        f" JOIN holders h ON h.national_id = w.national_id AND h.individual_id <> w.individual_id"
        f"                AND (h.merged_into IS NULL OR h.merged_into <> w.individual_id)"
        f" ORDER BY w.row_number LIMIT 5",
        (proposal.key,),
    )
    if taken := cur.fetchall():
        rows = ", ".join(f"row {row} ({national_id})" for row, national_id in taken)
        raise CommitConflict(f"national ids committed by another upload in the meantime: {rows}")


WORKFLOW = Workflow(
    dag_id="individuals_import",
    intake=FileIntake(spec=spec_for, params={
        "mode": Param("create", enum=list(UPLOAD_MODES),
                      description="create: new individuals (and households); update: rows carry `id` and only "
                                  "the columns in the file change"),
    }),
    validate=FileChecks(suite=suite_for, prepare=prepare, check=check),
    propose=Proposal(summarise=summarise, vars=proposal_vars,
                     shown=("row_number", "action", "version", "role", "recipient_type", "household_is_new")),
    approve=Approval(group="RegistryCheckers"),
    commit=Commit(append=commit, writes=("households", "individual_versions")),
    publish=Publish(asset="benefitflow://registry/individuals"),
    tags=("registry",),
    doc_md="""
### Import individuals and households into the social registry

**Parameters**
- `file` — a CSV in the inbox, UTF-8 (with or without BOM), comma-separated.
- `mode` — `create` (new people) or `update` (each row has `id`, or openIMIS's `ID`; only the
  columns present change; an unknown id is an error for that row). An update may move people
  between households (`group_code`, `individual_role`, `recipient_info`); both households must
  still have one HEAD and one primary recipient.
- `on_invalid_rows` — `reject_file` (default: any invalid row refuses the file) or
  `skip_invalid_rows` (the valid rows go on; a household goes whole or not at all).

**Columns** — the openIMIS individuals format as is: `first_name,last_name,dob,group_code,
recipient_info,individual_role,location_name,location_code` and programme variables, plus `sex`,
`national_id`, `phone`, `email`, `region`. Every column and rule comes from the registry schema
(`plugins/benefitflow/registry/individual.schema.json`).

**Steps**
1. *intake* — header checked (unknown, missing, duplicated columns; encoding; delimiter), rows
   copied into a staging table.
2. *validate* — the GX suite generated from the schema (types, enums, ranges, patterns, real
   dates, ages), then registry checks: national id already in the registry (blocks the row),
   likely duplicates (similar name, same date of birth and location: shown to the checker),
   one HEAD and one PRIMARY recipient per household (counting members already registered).
   Every failing row is in the error report (outbox `reports/`).
3. *propose* — dbt: individuals to create or update, households to create or extend.
4. *approve* — a member of `RegistryCheckers` other than you.
5. *commit* — new versions appended to the ledger; nothing changes before this.
6. *publish* — dbt rebuilds `registry.individuals`, `registry.households` and the marts.
""",
)
