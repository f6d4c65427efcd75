"""Step 3, propose: dbt builds the proposal model for the upload or request, under the proposal's
lock; the checker's numbers and the proposal's digest are taken from what it built."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions

from benefitflow.core import db, dbt_runner
from benefitflow.core.errors import WorkflowError
from benefitflow.workflows import inputs, proposal_digest
from benefitflow.workflows.declaration import Options, Taken, Workflow
from benefitflow.workflows.proposal_digest import ProposalRef


def propose_step(
    *, workflow: Workflow, taken: Taken, validated: dict[str, Any], options: Options | None = None
) -> dict[str, Any]:
    proposal = workflow.proposal_for(taken)
    key = proposal.key
    values: dict[str, Any] = {proposal.key_column: key}
    if workflow.takes_file:
        values["checked_table"] = inputs.checked_table(taken)
    if workflow.propose.vars is not None:
        values |= workflow.propose.vars(taken, options or {})
    with proposal_digest.locked(proposal):
        with db.transaction() as cur:
            built = workflow.takes_file and _proposed_before(cur, taken, proposal)
            if not workflow.takes_file and inputs.selection_lost(cur, key):
                raise WorkflowError(f"request {key}: the set validate selected for it was lost (the database "
                                    "restarted after validate): clear `validate` to select it again")
        if not built:
            dbt_runner.run(["run", "--select", workflow.proposal_model], values)
        with db.transaction() as cur:
            summary = workflow.propose.summarise(cur, proposal)
            digest = proposal_digest.compute(cur, proposal)
            # The proposal now holds all the commit needs.
            if workflow.takes_file:
                inputs.drop_staged(cur, taken["staged_table"])
            else:
                cur.execute("DELETE FROM intake.request_selection WHERE request_id = %s", (key,))
                inputs.set_request_status(cur, key, "WAITING_FOR_APPROVAL")
    if workflow.takes_file:
        return {"file": taken["file_name"], "upload_id": taken["upload_id"], **validated, **summary,
                "proposal_digest": digest}
    return {**taken, **validated, **summary, "proposal_digest": digest}


def _proposed_before(cur: psycopg2.extensions.cursor, upload: Taken, proposal: ProposalRef) -> bool:
    """Whether an earlier attempt of this step built the upload's proposal and dropped its staged rows (it was killed
    before it could hand on what it built): the proposal is summarised again, not built again from rows that are gone.
    (A request's proposal is built again: dbt's delete+insert keeps its rows when its selection is gone.)"""
    staged = inputs.staged_rows_present(cur, upload["staged_table"])
    if staged is False:
        raise WorkflowError(f"upload {proposal.key}: its checked rows were lost (the database restarted after "
                            "validate): clear `validate` to stage them again from the archived original and check them")
    return staged is None
