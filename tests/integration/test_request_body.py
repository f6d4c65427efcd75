"""The approval request's first rows, read from a real proposal table: in file order, only the columns shown."""

from __future__ import annotations

import uuid

import pytest

from benefitflow.core import db
from benefitflow.registry.individuals_import import WORKFLOW as INDIVIDUALS
from benefitflow.selftest.platform_selftest import WORKFLOW as SELFTEST
from benefitflow.workflows import catalogue
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
        shown = first_rows(cur, proposal, SELFTEST.propose.shown)
    assert shown.columns == ("row_number", "code", "label", "amount") and shown.total == 7
    assert shown.rows == tuple((str(n), f"{tag}-{n}", f"label {n}", f"{n}.25") for n in range(1, 6))
    body = render_body("selftest", "maker", summary, first_rows=shown, dag_id=SELFTEST.dag_id)
    assert "The first 5 of 7 proposed rows" in body and f"| 1 | {tag}-1 | label 1 | 1.25 |" in body


def test_a_request_names_nobody(database, inbox_file) -> None:
    """Names, dates of birth, ids and places are in the files the maker and the checkers may download, not in the
    request: not in its rows, not in its likely duplicates."""
    tag = uuid.uuid4().hex[:6].upper()
    content = ("first_name,last_name,dob,group_code,recipient_info,individual_role,able_bodied,location_code\n"
               f"Amina,Yusuf{tag},1980-02-03,H{tag},1,HEAD,True,L{tag}\n"
               f"Amina,Yusuf{tag},1980-02-03,H{tag},0,SPOUSE,True,L{tag}\n")
    summary, proposal = proposed(INDIVIDUALS, inbox_file, content,
                                 {"on_invalid_rows": "reject_file", "mode": "create"})
    assert summary["likely_duplicates"] == 1
    with db.transaction() as cur:
        shown = first_rows(cur, proposal, INDIVIDUALS.propose.shown)
    body = render_body("individuals_import", "maker", summary, first_rows=shown, dag_id=INDIVIDUALS.dag_id)
    assert "row 2: looks like row 1 of this file" in body and "| 2 | create |" in body
    for personal in ("Amina", f"Yusuf{tag}", "1980-02-03", f"H{tag}", f"L{tag}"):
        assert personal not in body, personal
    with db.transaction() as cur:
        cur.execute("SELECT individual_id::text FROM proposals.individuals_import_proposal WHERE upload_id = %s",
                    (proposal.key,))
        assert not any(individual_id in body for (individual_id,) in cur.fetchall())


@pytest.mark.parametrize("dag_id", sorted(catalogue.declared()))
def test_every_column_a_request_shows_is_a_column_of_its_proposal(database, dag_id: str) -> None:
    workflow = catalogue.declared()[dag_id].workflow
    schema, table = workflow.proposal_table.split(".")
    with db.transaction() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    (schema, table))
        columns = {name for (name,) in cur.fetchall()}
    assert columns, f"no table {workflow.proposal_table}"
    assert set(workflow.propose.shown) <= columns
    assert not set(workflow.propose.shown) & {"first_name", "last_name", "dob", "national_id", "phone", "email",
                                              "individual_id", "beneficiary_id", "household_code", "attributes"}
