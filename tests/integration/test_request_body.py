"""The approval request's first rows, read from a real proposal table: in file order, personal data left out."""

from __future__ import annotations

import uuid

from benefitflow.core import db
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.selftest.platform_selftest import WORKFLOW as SELFTEST
from benefitflow.workflows.direct import run_steps
from benefitflow.workflows.request_body import first_rows, render_body


def proposed(workflow, inbox_file, content: str, options: dict) -> tuple[dict, object]:
    name = inbox_file("request-body.csv", content).name
    result = run_steps(workflow, options=options, maker="maker", checker=None, run_id=uuid.uuid4().hex, file=name)
    return result["proposal"], workflow.proposal_for(result)


def test_the_first_rows_follow_the_file_and_count_the_whole_proposal(database, inbox_file) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    content = "code,label,amount\n" + "".join(f"{tag}-{n},label {n},{n}.25\n" for n in range(1, 8))
    summary, proposal = proposed(SELFTEST, inbox_file, content, {"on_invalid_rows": "reject_file"})
    with db.transaction() as cur:
        shown = first_rows(cur, proposal)
    assert shown.columns == ("row_number", "code", "label", "amount") and shown.total == 7 and not shown.left_out
    assert shown.rows == tuple((str(n), f"{tag}-{n}", f"label {n}", f"{n}.25") for n in range(1, 6))
    body = render_body("selftest", "maker", summary, first_rows=shown)
    assert "The first 5 of 7 proposed rows:" in body and f"| 1 | {tag}-1 | label 1 | 1.25 |" in body


def test_names_dates_of_birth_and_variables_are_left_out_of_the_request(database, inbox_file) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    content = ("first_name,last_name,dob,group_code,recipient_info,individual_role,able_bodied\n"
               f"Amina,Yusuf{tag},1980-02-03,H{tag},1,HEAD,True\n"
               f"Bako,Yusuf{tag},2010-05-06,H{tag},0,SON,True\n")
    summary, proposal = proposed(INDIVIDUALS, inbox_file, content, {"on_invalid_rows": "reject_file", "mode": "create"})
    with db.transaction() as cur:
        shown = first_rows(cur, proposal)
    assert shown.total == 2 and {"first_name", "last_name", "dob", "attributes"} <= set(shown.left_out)
    assert not {"first_name", "last_name", "dob", "attributes", "upload_id"} & set(shown.columns)
    body = render_body("individuals_import", "maker", summary, first_rows=shown)
    assert "Amina" not in body and f"Yusuf{tag}" not in body and "1980-02-03" not in body
    assert f"H{tag}" in body  # the household's code is the registry's own, not a person's
