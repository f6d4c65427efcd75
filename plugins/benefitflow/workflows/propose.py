"""Step 3, propose: dbt builds the proposal model for the upload or request, under the proposal's
lock; the checker's numbers and the proposal's digest are taken from what it built."""

from __future__ import annotations

from typing import Any

from benefitflow.core import db, dbt_runner
from benefitflow.core.errors import WorkflowError
from benefitflow.workflows import inputs, proposal_digest
from benefitflow.workflows.declaration import Options, Taken, Workflow


def propose_step(
    *, workflow: Workflow, taken: Taken, validated: dict[str, Any], options: Options | None = None
) -> dict[str, Any]:
    proposal = workflow.proposal_for(taken)
    key = proposal.key
    if workflow.takes_file:
        with db.transaction() as cur:
            if inputs.staged_rows_lost(cur, taken):
                raise WorkflowError(f"upload {key}: its checked rows were lost (the database restarted after "
                                    "validate, or this step had already run): clear `validate` to stage them again "
                                    "from the archived original and check them")
    values: dict[str, Any] = {proposal.key_column: key}
    if workflow.takes_file:
        values["checked_table"] = inputs.checked_table(taken)
    if workflow.propose.vars is not None:
        values |= workflow.propose.vars(taken, options or {})
    with proposal_digest.locked(proposal):
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
