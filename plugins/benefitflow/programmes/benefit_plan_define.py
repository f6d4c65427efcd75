"""The `benefit_plan_define` workflow: a benefit plan, or a new version of one, versioned in the ledger."""

from __future__ import annotations

import json
from typing import Any

import psycopg2.extensions
import yaml
from airflow.sdk import Param

from benefitflow.core import config, file_store
from benefitflow.core.errors import RequestError
from benefitflow.core.file_store import InboxError
from benefitflow.programmes import plans
from benefitflow.workflows.declaration import (
    Approval,
    Commit,
    FormCheck,
    FormIntake,
    Options,
    Proposal,
    Publish,
    Workflow,
)
from benefitflow.workflows.proposal_digest import ProposalRef

MAX_PLAN_FILE_BYTES = 1 << 20


def document_from(options: Options) -> Any:
    """The plan document of the trigger form: the `plan` object, or a YAML/JSON `file` in the inbox."""
    given, file = options.get("plan") or {}, (options.get("file") or "").strip()
    if given and file:
        raise RequestError("give the plan either as `plan` (a JSON object) or as `file`, not both")
    if given:
        return given
    if not file:
        raise RequestError("give the plan as `plan` (a JSON object) or as `file` (YAML or JSON in the inbox)")
    try:
        with file_store.open_in_inbox(file, config.inbox()) as handed_in:
            content = handed_in.handle.read(MAX_PLAN_FILE_BYTES + 1)
    except InboxError as exc:
        raise RequestError(str(exc)) from exc
    if len(content) > MAX_PLAN_FILE_BYTES:
        raise RequestError(f"file {handed_in.name}: larger than {MAX_PLAN_FILE_BYTES} bytes; a plan document is small")
    try:
        loaded = yaml.safe_load(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RequestError(f"file {handed_in.name}: not a YAML or JSON document ({exc})") from exc
    return json.loads(json.dumps(loaded, default=str))  # YAML dates become the ISO strings the schema expects


def validate_definition(
    cur: psycopg2.extensions.cursor, request_id: int, options: Options, user: str,
) -> dict[str, Any]:
    plan = plans.validate_document(document_from(options))
    existing = plans.current(cur, plan.code)
    if existing is None:
        return {"plan": plan.code, "version": 1, "based_on_version": None, "changes": ["new plan"],
                "document": plan.document}
    if existing.plan.code != plan.code:
        raise RequestError(f"plan code {plan.code!r} differs only in case from the existing plan "
                           f"{existing.plan.code!r}")
    if existing.status == "CLOSED":
        raise RequestError(f"plan {plan.code} is closed; a closed plan is not redefined")
    if existing.plan.type != plan.type:
        raise RequestError(f"plan {plan.code} is a {existing.plan.type} plan; its type cannot change")
    changes = sorted(key for key in {*existing.plan.document, *plan.document}
                     if existing.plan.document.get(key) != plan.document.get(key))
    if not changes:
        raise RequestError(f"plan {plan.code}: identical to version {existing.version}; nothing to change")
    return {"plan": plan.code, "version": existing.version + 1, "based_on_version": existing.version,
            "changes": changes, "document": plan.document}


def summarise_definition(cur: psycopg2.extensions.cursor, proposal: ProposalRef) -> dict[str, Any]:
    request_id = proposal.key
    cur.execute(f"SELECT plan_code, version, name, plan_type FROM {proposal.table} WHERE request_id ="
                f" %s", (request_id,))
    code, version, name, plan_type = cur.fetchone()
    return {"plan_version": f"{code} version {version}: {name} ({plan_type})"}


def commit_definition(cur: psycopg2.extensions.cursor, commit_id: int, proposal: ProposalRef) -> int:
    request_id = proposal.key
    plans.lock_plans(cur)  # a new code is unique whatever its case
    cur.execute(f"SELECT plan_code, based_on_version FROM {proposal.table} WHERE request_id = %s", (request_id,))
    code, based_on = cur.fetchone()
    plans.lock_plan(cur, code)  # a new version may lower max_beneficiaries or change the entitlement rule
    plans.refuse_if_moved_on(cur, code, based_on)
    cur.execute(
        f"INSERT INTO ledger.plan_versions (plan_code, version, commit_id, name, plan_type, valid_from, valid_to,"
        f" max_beneficiaries, currency, status, document)"
        f" SELECT plan_code, version, %s, name, plan_type, valid_from, valid_to, max_beneficiaries, currency,"
        f" 'ACTIVE', document FROM {proposal.table} WHERE request_id = %s",
        (commit_id, request_id),
    )
    return cur.rowcount


WORKFLOW = Workflow(
    dag_id="benefit_plan_define",
    intake=FormIntake(params={
        "plan": Param({}, type="object",
                      description="The plan document as a JSON object (or leave empty and give `file`)"),
        "file": Param("", type="string", maxLength=500, description="A YAML or JSON plan document in the inbox"),
    }, describe=lambda options: f"plan {(options.get('plan') or {}).get('code') or options.get('file') or '?'}",
       plan_of=lambda options: str((options.get("plan") or {}).get("code") or options.get("file") or "")),
    validate=FormCheck(check=validate_definition),
    propose=Proposal(summarise=summarise_definition,
                     shown=("plan_code", "version", "name", "plan_type", "valid_from", "valid_to", "max_beneficiaries",
                            "currency")),
    approve=Approval(group="ProgrammeCheckers"),
    commit=Commit(append=commit_definition, writes=("plan_versions",)),
    publish=Publish(asset=plans.PLAN_ASSET),
    tags=("programmes",),
    doc_md="""
### Define a benefit plan, or a new version of one

**Parameters** — `plan`: the document as a JSON object; or `file`: a YAML/JSON document in the inbox.

The document (schema: `plugins/benefitflow/programmes/plan.schema.json`): `code`, `name`,
`type` (`INDIVIDUAL` or `GROUP` — households), `description`, `institution`, `valid_from`,
`valid_to`, `max_beneficiaries`, `currency`, `payment_frequency`, `beneficiary_data_schema`
(a JSON Schema of the programme's variables), `default_criteria` (`POTENTIAL` / `ACTIVE`:
filters in the registry's filter language) and `entitlement` (`fixed_amount`, `per_member`,
`top_ups`, `cap`, `transaction_limit`; amounts as strings such as `"1500.00"`).

A code that exists makes a new version (its type cannot change; a closed plan is not
redefined). Every problem is reported with its path; nothing changes until a member of
`ProgrammeCheckers` other than you approves.
""",
)
