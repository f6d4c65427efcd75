"""The `beneficiaries_import` workflow: a plan's beneficiaries from CSV, checked against the plan's schema.

create: each row names a registered person (`individual_id`, INDIVIDUAL plans) or household
(`household_code`, GROUP plans), or describes a new person with the registry's columns — checked
like an individuals upload and registered in the same commit. In a GROUP plan a new household is
described by its members' rows (same `household_code`); its HEAD's row is the beneficiary's and
carries the plan's variables and, optionally, the status (POTENTIAL, the default, or ACTIVE).
update: each row carries the beneficiary's `id`; only the plan variables in the file change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg2.extensions
from airflow.sdk import Param
from psycopg2 import sql

from benefitflow.core import columns, db, filters
from benefitflow.core.errors import CommitConflict, WorkflowError
from benefitflow.programmes import plans
from benefitflow.programmes.beneficiary_versions import append_beneficiaries
from benefitflow.registry import checks, individuals_import, schema
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
    plan_parameter,
)
from benefitflow.workflows.inputs import FileSpec, checked_table, index_by_row
from benefitflow.workflows.intake import UPLOAD_MODES, mode_of
from benefitflow.workflows.proposal_digest import ProposalRef

if TYPE_CHECKING:  # GX is imported by the tasks that validate, not when the DAG is parsed
    from great_expectations.core import ExpectationSuite

KIND = "beneficiaries"
STATUS_COLUMN = "status"
ID_COLUMN = "id"
MEMBER_COLUMNS = ("recipient_info", "individual_role")  # a GROUP file's household_code is the group_code
CHECKS = row_checks.beside(__file__)
REGISTERED_HOUSEHOLD = "EXISTS (SELECT 1 FROM registry.households h WHERE h.household_code = {})"


def plan_of(options: Options) -> plans.Plan:
    try:
        with db.transaction() as cur:
            return plans.require_active(cur, options.get("plan")).plan
    except plans.PlanError as exc:
        raise WorkflowError(f"plan: {exc}") from exc


def variables_of(plan: plans.Plan) -> list[columns.Property]:
    variables = plan.variables_schema
    required = set(variables.get("required") or [])
    return [columns.Property(name, filters.property_type(definition), definition, name in required)
            for name, definition in (variables.get("properties") or {}).items()]


def spec_for(options: Options) -> FileSpec:
    plan = plan_of(options)
    variables = variables_of(plan)
    if mode_of(options) == "update":
        return FileSpec(kind=KIND, required_columns=(ID_COLUMN,), optional_columns=tuple(v.name for v in variables),
                        aliases=(("beneficiary_id", ID_COLUMN),))
    required = tuple(v.name for v in variables if v.required)
    optional = (STATUS_COLUMN, *(v.name for v in variables if not v.required))
    people = tuple(schema.load().properties)
    if plan.type == "GROUP":  # a row names a registered household, or is a member of a new one
        return FileSpec(kind=KIND, required_columns=("household_code", *required),
                        optional_columns=(*people, *MEMBER_COLUMNS, *optional),
                        aliases=(("group_code", "household_code"),))
    # A row names a registered person by individual_id, or describes a new one (added to the registry).
    return FileSpec(kind=KIND, required_columns=required,
                    optional_columns=("individual_id", *people, *schema.HOUSEHOLD_COLUMNS, *optional))


def people_table(upload: dict[str, Any]) -> str:
    return f"{upload['staged_table']}_people"


def prepare(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> str:
    """The checked table (plan variables typed, and new people's columns); for new people, a registry-shaped one."""
    plan, header = plan_of(options), upload["header"]
    variables = variables_of(plan)
    registry = schema.load()
    creating = mode_of(options) == "create"
    people = list(registry.properties.values()) if creating else []
    target = checked_table(upload)
    cur.execute(columns.typed_table_sql(
        [*people, *variables], registry.variables if people else [], header, upload["staged_table"], target,
        text_columns=[*(p.name for p in people), *(schema.HOUSEHOLD_COLUMNS if people else ()),
                      *(v.name for v in variables), ID_COLUMN, "individual_id", "household_code", STATUS_COLUMN],
        derived=[sql.SQL("{} AS beneficiary_id").format(columns.as_uuid(sql.SQL("p.id"))),
                 sql.SQL("{} AS person_id").format(columns.as_uuid(sql.SQL("p.individual_id"))),
                 sql.SQL("coalesce(upper(p.status), 'POTENTIAL') AS initial_status"),
                 *(schema.person_columns()[1:] if people else []),
                 *_row_kind(plan, creating),
                 sql.SQL("{} AS plan_attributes").format(columns.attributes_sql(variables))],
    ))
    index_by_row(cur, target)
    if not people:
        return target
    if plan.type == "GROUP":  # the members of households not yet registered
        rows = sql.SQL(REGISTERED_HOUSEHOLD).format(sql.SQL("nullif(btrim(s.household_code), '')"))
        cur.execute(schema.checked_table_sql(registry, header, upload["staged_table"], people_table(upload),
                                             sql.SQL("NOT ") + rows, sources={"group_code": "household_code"}))
    else:
        rows = sql.SQL("s.individual_id IS NULL" if "individual_id" in header else "TRUE")
        cur.execute(schema.checked_table_sql(registry, header, upload["staged_table"], people_table(upload), rows))
    index_by_row(cur, people_table(upload))
    return target


def _row_kind(plan: plans.Plan, creating: bool) -> list[sql.Composable]:
    """Whether the row's household is registered, and whether the row is a beneficiary's (not only a member's)."""
    if plan.type == "GROUP" and creating:
        registered = sql.SQL(REGISTERED_HOUSEHOLD).format(sql.SQL("p.household_code"))
        return [sql.SQL("{} AS household_is_registered").format(registered),
                sql.SQL("({} OR upper(p.individual_role) = 'HEAD') AS beneficiary_row").format(registered)]
    return [sql.SQL("NULL::boolean AS household_is_registered"), sql.SQL("TRUE AS beneficiary_row")]


def suite_for(upload: dict[str, Any], options: Options) -> ExpectationSuite:
    plan, mode, header = plan_of(options), mode_of(options), upload["header"]
    expectations: list[dict[str, Any]] = []
    if mode == "create":
        expectations += schema.suite_document(schema.load(), header, "create", people_may_exist=True)["expectations"]
    # In a GROUP file only the beneficiary's rows carry the plan variables: a SQL check requires them.
    variables_required = mode == "create" and plan.type == "INDIVIDUAL"
    for variable in variables_of(plan):
        if variable.name in header:
            expectations += columns.property_expectations(variable, required=variable.required and variables_required)
    if mode == "update":
        identity = [(ID_COLUMN, "the id of the beneficiary to update is required", columns.UUID_PATTERN)]
    elif plan.type == "GROUP":
        identity = [("household_code", "the household's code is required", schema.GROUP_CODE_PATTERN)]
    else:  # optional: a row without individual_id describes a new person
        identity = [("individual_id", "", columns.UUID_PATTERN)] if "individual_id" in header else []
    for column, message, pattern in identity:
        expectations.append(columns.expectation("match_regex", column, "not a valid id", regex=pattern))
        if message:
            expectations.append(columns.expectation("not_null", column, message))
        if column != "household_code":  # a new household's members share it (a SQL check covers registered ones)
            expectations.append(columns.expectation("unique", column, "appears more than once in the file"))
    if STATUS_COLUMN in header:
        expectations.append(columns.expectation("in_set", STATUS_COLUMN,
                                               "an imported beneficiary is POTENTIAL or ACTIVE",
                                               value_set=["POTENTIAL", "ACTIVE", "potential", "active"]))
    return suites.suite_from_document({"name": f"beneficiaries_{mode}", "expectations": expectations})


def check(cur: psycopg2.extensions.cursor, upload: dict[str, Any], options: Options) -> None:
    plan, mode = plan_of(options), mode_of(options)
    parts = {"upload": sql.Literal(int(upload["upload_id"])), "checked": sql.Identifier(checked_table(upload)),
             "plan": sql.Literal(plan.code), "described": _describes_a_person(plan)}

    def run(check: str, **more: sql.Composable) -> None:
        row_checks.run(cur, CHECKS[check], **parts, **more)

    if mode == "update":
        run("unknown_beneficiary")
        return
    if plan.type == "GROUP":
        run("unknown_household")
        run("registered_household_described")
        run("registered_household_twice")
        run("already_enrolled", column=sql.Literal("household_code"), member=sql.SQL("c.household_code"),
            match=sql.SQL("b.household_code = c.household_code"))
        run("new_person_incomplete",
            new_person=sql.SQL("NOT c.household_is_registered AND {}").format(parts["described"]))
        run("variables_on_a_members_row")
        for variable in variables_of(plan):
            if variable.required:
                run("variable_missing", name=sql.Literal(variable.name), variable=sql.Identifier(variable.name))
    else:
        row_checks.run(cur, checks.CHECKS["unknown_person"], **parts)
        run("already_enrolled", column=sql.Literal("individual_id"), member=sql.SQL("c.individual_id"),
            match=sql.SQL("b.individual_id = c.person_id"))
        run("person_named_twice")
        run("new_person_incomplete", new_person=sql.SQL("c.individual_id IS NULL"))
    checks.run_all(cur, int(upload["upload_id"]), people_table(upload), mode="create", header=upload["header"],
                   whole_households=options.get("on_invalid_rows") == "skip_invalid_rows")
    if plan.max_beneficiaries is not None:
        run("over_capacity", capacity=sql.Literal(plan.max_beneficiaries))


def _describes_a_person(plan: plans.Plan) -> sql.Composable:
    """The row gives any of the registry's person columns (a GROUP file's household_code is not one)."""
    household = MEMBER_COLUMNS if plan.type == "GROUP" else schema.HOUSEHOLD_COLUMNS
    named = [*schema.load().properties, *household]
    return sql.SQL("num_nonnulls({}) > 0").format(sql.SQL(", ").join(sql.Identifier("c", c) for c in named))


def proposal_vars(upload: dict[str, Any], options: Options) -> dict[str, Any]:
    plan = plan_of(options)
    return {"mode": mode_of(options), "columns": list(upload["header"]), "plan_type": plan.type}


def summarise(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    upload_id = proposal.key
    cur.execute(
        f"SELECT count(*) FILTER (WHERE version = 1), count(*) FILTER (WHERE version > 1),"
        f" count(*) FILTER (WHERE version = 1 AND status = 'ACTIVE') FROM {proposal.table} WHERE upload_id = %s",
        (upload_id,))
    enrolled, updated, active = cur.fetchone()
    cur.execute(f"SELECT count(*) FILTER (WHERE person_is_new), count(DISTINCT member_household_code)"
                f" FILTER (WHERE household_is_new) FROM {proposal.table} WHERE upload_id = %s", (upload_id,))
    new_people, new_households = cur.fetchone()
    cur.execute("SELECT count(DISTINCT row_number) FROM intake.row_errors"
                " WHERE upload_id = %s AND rule = 'likely_duplicate'", (upload_id,))
    return {"beneficiaries_to_enrol": enrolled, "of_which_active": active, "beneficiaries_to_update": updated,
            "new_people_to_register": new_people, "new_households_to_register": new_households,
            "likely_duplicates": cur.fetchone()[0]}


def commit(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    """Register the new people (and their new households), then append the beneficiaries."""
    upload_id = proposal.key
    cur.execute(f"SELECT u.plan_code, count(p.*) FILTER (WHERE p.version = 1),"
                f" count(p.*) FILTER (WHERE p.person_is_new)"
                f" FROM intake.uploads u LEFT JOIN {proposal.table} p USING (upload_id) WHERE u.upload_id = %s"
                f" GROUP BY 1",
                (upload_id,))
    code, enrolling, registering = cur.fetchone()
    if registering:  # lock order: the registry, then the plan
        individuals_import.lock_registry(cur)
    plans.lock_plan(cur, code)  # before the re-checks, so a concurrent commit of the plan is seen
    cur.execute(
        f"SELECT p.row_number FROM {proposal.table} p WHERE p.upload_id = %s AND p.version > 1 AND p.version - 1 <>"
        f" (SELECT max(v.version) FROM ledger.beneficiary_versions v WHERE v.beneficiary_id = p.beneficiary_id)"
        f" ORDER BY 1 LIMIT 5", (upload_id,))
    if stale := [str(row) for (row,) in cur.fetchall()]:
        raise CommitConflict(f"beneficiaries changed after the proposal (rows {', '.join(stale)}); upload again")
    if registering:
        _register_new_people(cur, commit_id, proposal)
    return append_beneficiaries(
        cur, code, enrolling,
        f"INSERT INTO ledger.beneficiary_versions (beneficiary_id, version, plan_code, individual_id,"
        f" household_code, status, attributes, reason, commit_id, upload_id, row_number)"
        f" SELECT beneficiary_id, version, plan_code, individual_id, household_code, status, attributes,"
        f" reason, %s, upload_id, row_number FROM {proposal.table} WHERE upload_id = %s AND beneficiary_id IS NOT NULL",
        (commit_id, upload_id),
    )


def _register_new_people(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> None:
    """Under the registry lock (taken by `commit`): re-checked like an individuals upload."""
    upload_id = proposal.key
    individuals_import.refuse_taken_national_ids(cur, proposal, person="person_id")
    cur.execute(
        f"SELECT DISTINCT p.member_household_code FROM {proposal.table} p JOIN ledger.households h"
        f" ON h.household_code = p.member_household_code WHERE p.upload_id = %s AND p.household_is_new"
        f" ORDER BY 1 LIMIT 5", (upload_id,))
    if taken := [code for (code,) in cur.fetchall()]:
        raise CommitConflict(f"households registered by another upload in the meantime: {', '.join(taken)}")
    cur.execute(
        f"INSERT INTO ledger.households (household_code, commit_id) SELECT DISTINCT member_household_code, %s"
        f" FROM {proposal.table} WHERE upload_id = %s AND household_is_new", (commit_id, upload_id))
    cur.execute(
        f"INSERT INTO ledger.individual_versions (individual_id, version, commit_id, upload_id, row_number,"
        f" first_name, last_name, dob, sex, national_id, location_code, location_name, region, household_code,"
        f" role, recipient_type, attributes)"
        f" SELECT person_id, 1, %s, upload_id, row_number, first_name, last_name, dob, sex, national_id,"
        f" location_code, location_name, region, member_household_code, role, recipient_type, person_attributes"
        f" FROM {proposal.table} WHERE upload_id = %s AND person_is_new",
        (commit_id, upload_id))
    individuals_import.refuse_broken_households(cur, commit_id)  # a new person may join a registered household


WORKFLOW = Workflow(
    dag_id="beneficiaries_import",
    intake=FileIntake(spec=spec_for, params={
        "plan": Param("", type="string", minLength=1, maxLength=30, description="The plan's code"),
        "mode": Param("create", enum=list(UPLOAD_MODES),
                      description="create: enrol the people (or households) the rows name; update: rows carry the "
                                  "beneficiary `id` and only the plan variables in the file change"),
    }, plan_of=plan_parameter, choices={"plan": plans.active_plan_choices}),
    validate=FileChecks(suite=suite_for, prepare=prepare, check=check),
    propose=Proposal(summarise=summarise, vars=proposal_vars,
                     shown=("row_number", "version", "status", "role", "recipient_type", "person_is_new",
                            "household_is_new")),
    approve=Approval(group="ProgrammeCheckers"),
    # New people join the registry too: their versions and households are published with the beneficiaries.
    commit=Commit(append=commit, writes=("beneficiary_versions", "households", "individual_versions")),
    publish=Publish(asset="benefitflow://programmes/beneficiaries"),
    tags=("programmes",),
    doc_md="""
### Import a plan's beneficiaries from CSV

**Parameters**
- `plan` — the plan's code.
- `file` — a CSV in the inbox, UTF-8 (with or without BOM), comma-separated.
- `mode` — `create`: each row names a registered person by `individual_id` (INDIVIDUAL plans)
  or a household by `household_code` / `group_code` (GROUP plans), with the plan's variables and
  optionally `status` (POTENTIAL, the default, or ACTIVE). People and households not yet in the
  registry are described with the registry's columns (`first_name`, `last_name`, `dob`, `sex`,
  `region`, ..., `individual_role`, `recipient_info`) and registered in the same commit; a new
  household's members share its `group_code`, and its HEAD's row carries the plan's variables.
  `update`: each row carries the beneficiary's `id` and only the plan variables in the file change.
- `on_invalid_rows` — `reject_file` (default) or `skip_invalid_rows`.

**Checks** — the GX suite is generated from the plan's `beneficiary_data_schema` (types, enums,
ranges, patterns, required variables) and, for new people, the registry's; then: a named person
or household must be in the registry and not already in the plan, new people get the registry's
checks (national id, likely duplicates, one HEAD and one primary recipient per household),
`max_beneficiaries` is never exceeded (rows beyond it are refused, in file order), an update's
`id` must be a beneficiary of the plan. Every failing row is in the error report. A member of
`ProgrammeCheckers` other than you approves.
""",
)
